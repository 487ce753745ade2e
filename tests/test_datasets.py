"""lth_tf.data.datasets: the dataset registry's static facts (no data loaded)."""
from lth_tf.data import datasets


def test_static_specs():
    assert set(datasets.DATASETS) == {"mnist", "fashion_mnist", "cifar10", "mnist1d"}
    assert datasets.DATASETS["mnist"] == datasets.DatasetSpec((28, 28, 1), 10, 5000, 60_000)
    assert datasets.DATASETS["fashion_mnist"] == datasets.DatasetSpec((28, 28, 1), 10, 5000, 60_000)
    assert datasets.DATASETS["cifar10"] == datasets.DatasetSpec((32, 32, 3), 10, 5000, 50_000)
    assert datasets.DATASETS["mnist1d"] == datasets.DatasetSpec((40,), 10, 800, 8000)
