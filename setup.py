"""lth_tf: lottery tickets (Frankle & Carbin, ICLR 2019) for Keras, with tfmot pruning wrappers."""
import re

from setuptools import find_packages, setup

with open("lth_tf/__init__.py") as f:
    VERSION = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

setup(
    name="lth_tf",
    version=VERSION,
    description="Lottery tickets for Keras: iterative magnitude pruning with tfmot, rewinding, the paper's controls",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["lth_tf", "lth_tf.*"]),
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "tf-keras>=2.16,<2.22",
        "tensorflow-model-optimization==0.8.1",
        "tensorflow-datasets",
        "absl-py",
        "numpy",
        "mnist1d",
        "setuptools",  # tfmot imports distutils, gone from the standard library in Python 3.12
    ],
    extras_require={
        "plots": ["matplotlib", "pandas"],
        # The notebook tests execute colab/*.ipynb with nbclient, in an ipykernel.
        # jax[cpu] lets tests/test_keras3.py run lth_tf.keras3 under Keras 3's JAX backend too.
        "tests": ["pytest", "matplotlib", "pandas", "nbclient", "nbformat", "ipykernel", "jax[cpu]"],
        "notebooks": ["nbclient", "nbformat", "ipykernel", "matplotlib", "pandas"],
        # Viewing --tensorboard logs; writing them needs only TensorFlow.
        "tensorboard": ["tensorboard"],
        # lth_tf.keras3 on Keras 3's JAX backend (KERAS_BACKEND=jax). For PyTorch install torch yourself: the
        # default wheel brings CUDA libraries, the CPU one comes from PyTorch's own index.
        "keras3-jax": ["jax[cpu]"],
    },
    entry_points={"console_scripts": ["lth_tf=lth_tf.main:run"]},
)
