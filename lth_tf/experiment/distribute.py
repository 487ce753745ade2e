"""tf.distribute strategies from the configuration, TF_CONFIG handling, and who writes results.

    strategy = distribute.create("mirrored")      # or default | one_device | multi_worker | tpu
    with strategy.scope(): ...                     # experiment.run(..., strategy=strategy) does this
    distribute.is_chief("multi_worker")            # only the chief writes the results directory

Strategies (`--strategy`):
  default       TensorFlow's default strategy (no distribution; runs where TensorFlow places ops).
  one_device    OneDeviceStrategy on the first GPU, else the CPU.
  mirrored      MirroredStrategy over every local GPU; without GPUs, over every logical CPU device
                (one unless `configure_cpu_devices(n)` ran first: that is how the tests use 2 replicas).
  multi_worker  MultiWorkerMirroredStrategy configured by the standard TF_CONFIG environment variable,
                e.g. {"cluster": {"worker": ["host0:port", "host1:port"]}, "task": {"type": "worker", "index": 0}}.
                `python -m lth_tf.launch --workers=2 -- <flags>` starts such workers on this machine.
  tpu           TPUStrategy through TPUClusterResolver (fails with StrategyError where there is no TPU).

`--batch_size` is always the global batch: Keras splits each batch across the replicas, and the loss is
scaled by the number of replicas, so a step means the same as on one device.

Multi-worker: every worker runs the same training steps (each step all-reduces gradients), but only the
chief (task "chief", or worker 0 when the cluster has no chief) writes the results directory. Other
workers get a `WorkerStore`: their writes go to a throwaway temporary directory, and they read what is
finished from the chief's directory (the Keras BackupAndRestore convention: resuming multi-worker runs
needs the results directory on a filesystem all workers can read; the local launcher has one).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile

from lth_tf import _env  # noqa: F401
import tensorflow as tf

from lth_tf.experiment import store as store_lib

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")


class StrategyError(Exception):
    """A strategy that cannot be created here; str(e) is one line saying why."""


# ---- TF_CONFIG --------------------------------------------------------------------------------------

def tf_config(environ=None) -> dict | None:
    """The parsed TF_CONFIG (None when unset or empty). Raises StrategyError when it is malformed."""
    text = (environ if environ is not None else os.environ).get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({e})") from None
    cluster, task = (value.get("cluster"), value.get("task")) if isinstance(value, dict) else (None, None)
    if not isinstance(cluster, dict) or not cluster or not all(
            isinstance(v, list) and v and all(isinstance(a, str) for a in v) for v in cluster.values()):
        raise StrategyError('TF_CONFIG needs "cluster": {"worker": ["host:port", ...]} (job name -> addresses)')
    if not isinstance(task, dict) or task.get("type") not in cluster or not isinstance(task.get("index"), int) \
            or not 0 <= task["index"] < len(cluster[task["type"]]):
        raise StrategyError('TF_CONFIG needs "task": {"type": <a job in "cluster">, "index": <its position>}')
    unsupported = sorted(set(cluster) - {"chief", "worker"})
    if unsupported:
        raise StrategyError(f"TF_CONFIG job(s) {', '.join(unsupported)} are not used by multi_worker; "
                            "list only 'chief' and 'worker'")
    return value


def is_chief(strategy_name: str = "multi_worker", environ=None) -> bool:
    """Whether this process writes results: always, except a non-chief multi-worker task."""
    if strategy_name != "multi_worker":
        return True
    config = tf_config(environ)
    if config is None:
        return True
    task, cluster = config["task"], config["cluster"]
    if task["type"] == "chief":
        return True
    return task["type"] == "worker" and task["index"] == 0 and "chief" not in cluster


def worker_count(environ=None) -> int:
    config = tf_config(environ)
    return 1 if config is None else sum(len(addresses) for addresses in config["cluster"].values())


# ---- devices ----------------------------------------------------------------------------------------

def configure_cpu_devices(count: int) -> None:
    """Splits the CPU into `count` logical devices, so that `mirrored` gets `count` replicas without GPUs.

    Must run before TensorFlow initialises its devices (before any op runs): call it first thing in a script.
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as e:
        raise StrategyError(f"cannot split the CPU into {count} devices: TensorFlow is already initialised "
                            f"({e})") from None


def create(name: str):
    """The tf.distribute strategy called `name` (see STRATEGIES). Raises StrategyError with one line.

    Create it before running any TensorFlow op: MultiWorkerMirroredStrategy and TPUStrategy configure the
    runtime and refuse to start once it is initialised.
    """
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy '{name}'; choose one of: {', '.join(STRATEGIES)}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    if name == "multi_worker":
        if tf_config() is None:
            raise StrategyError("--strategy=multi_worker needs the TF_CONFIG environment variable "
                                "(or start the workers with: python -m lth_tf.launch --workers=N -- <flags>)")
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError, tf.errors.OpError) as e:
            raise StrategyError(f"cannot start MultiWorkerMirroredStrategy from TF_CONFIG: {_first_line(e)}") \
                from None
    # tpu
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except Exception as e:  # noqa: BLE001 -- every failure here means "no usable TPU"; say so in one line
        raise StrategyError(f"--strategy=tpu: no TPU is reachable from this machine ({_first_line(e)}); "
                            "use --strategy=default, mirrored or multi_worker") from None


def describe(strategy) -> str:
    """One line for people: the strategy's class, replicas and devices."""
    replicas = strategy.num_replicas_in_sync
    devices = getattr(strategy.extended, "worker_devices", ())
    where = f" on {', '.join(_short_device(d) for d in devices)}" if devices else ""
    return f"{type(strategy).__name__}, {replicas} replica{'s' if replicas != 1 else ''}{where}"


def _short_device(name: str) -> str:
    return name.replace("/job:localhost/replica:0/task:0", "").lstrip("/") or name


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def enable_determinism(seed: int) -> None:
    """--deterministic: seeded Python/NumPy/TF random state and deterministic TF kernels."""
    import tf_keras as keras
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# ---- non-chief workers ------------------------------------------------------------------------------

class WorkerStore(store_lib.Store):
    """The store of a non-chief worker: reads the chief's directory, writes into a throwaway scratch one.

    Reads look in the scratch directory first (what this worker just finished, possibly before the chief
    has written it), then in the chief's directory (rounds finished before a resume). Nothing is ever
    written under `root`, so a worker can neither clobber nor half-write the chief's results.

        with WorkerStore.opened("results/run1") as store:
            experiment.run(cfg, store, strategy=strategy)
    """

    def __init__(self, root: str, scratch: str):
        super().__init__(root)
        self.scratch = store_lib.Store(scratch)

    @classmethod
    @contextlib.contextmanager
    def opened(cls, root: str):
        scratch = tempfile.mkdtemp(prefix="lth_tf-worker-")
        try:
            yield cls(root, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    # writes: scratch only
    def save_weights(self, trial, kind, weights):
        self.scratch.save_weights(trial, kind, weights)

    def save_round(self, trial, variant, round_, **kwargs):
        self.scratch.save_round(trial, variant, round_, **kwargs)

    def save_backup(self, trial, variant, round_, arrays):
        self.scratch.save_backup(trial, variant, round_, arrays)

    def clear_backup(self, trial, variant, round_):
        self.scratch.clear_backup(trial, variant, round_)

    def write_results_csv(self):
        pass

    @contextlib.contextmanager
    def trial_lock(self, trial):  # the chief holds the locks
        yield self

    # reads: scratch first, then the chief's directory
    def is_done(self, trial, variant, round_):
        return self.scratch.is_done(trial, variant, round_) or super().is_done(trial, variant, round_)

    def load_weights(self, trial, kind):
        weights = self.scratch.load_weights(trial, kind)
        return weights if weights is not None else super().load_weights(trial, kind)

    def load_backup(self, trial, variant, round_):
        state = self.scratch.load_backup(trial, variant, round_)
        return state if state is not None else super().load_backup(trial, variant, round_)

    def load_round(self, trial, variant, round_, what):
        if self.scratch.is_done(trial, variant, round_):
            return self.scratch.load_round(trial, variant, round_, what)
        return super().load_round(trial, variant, round_, what)
