"""A lottery-ticket experiment: trials x variants x rounds, resumable from the store.

For each trial:
  1. build the model from the trial's seed and save its initial weights;
  2. `lottery`: round 0 trains the dense network; each later round prunes the previous round's trained
     network (iteratively: a fraction of the survivors, per layer or globally; one-shot: straight from round
     0 to the level), rewinds the survivors to their initial values and trains again. With late rewinding
     (--rewind_iteration=k) the survivors rewind to their iteration-k values and train from iteration k to
     T, the learning-rate schedule continuing from k, with a fresh optimizer (as open_lth does);
  3. controls reuse the lottery masks of each round: `reinit` starts from a fresh draw of the initialiser,
     `rearrange` moves each layer's surviving initial values to random positions, `shuffle` permutes each
     layer's mask over the initial values left in place, `invert` keeps the weights the pruning would remove
     (per layer the ticket's count, the lowest magnitudes of the network the ticket was pruned from).
Pruning at initialization (--pruning=random|magnitude_init|snip|grasp|synflow; Frankle et al., ICLR 2021):
round 0 trains the dense network as above (the reference, and W_k's source with --rewind_iteration=k); each
round r >= 1 scores W_0 (or W_k) with the method (`init_scores`), masks it in one shot to the exact weight count
IMP keeps at round r (`pruning.level_counts`, per layer or per global pool) and trains once, like a lottery
round. The controls apply to these masks the same way (`invert` prunes the method's highest scores instead of
its lowest).
A round whose result is already stored is skipped, so running the same command again resumes.

With `pairs=PairSpec(...)` each trial then runs the instability analysis of Frankle et al. (ICML 2020) on its
rounds (lth_tf.instability drives it over several k): for each round r and pair variant, two copies of the
round's start network are trained from iteration k to T under one mask with different SGD noise (data order,
augmentation), and the error along the linear path between them is measured (lth_tf.experiment.interpolation). Each copy
and each pair's result are stored like rounds, so finished ones are never trained again.

Each trial is a generator that yields the training jobs it needs next (a round; the control rounds or a pair's
two copies, which do not depend on each other) and is sent their results. `_Group` runs --parallel_trials
trials this way on one RoundTrainer, training the jobs of all of them that fit side by side in one stacked
model (lth_tf.training.stacked); with --parallel_trials=1 each job trains alone, on the trial's own model.

What the loop does with models (build, snapshot and restore weights as {"layer/weight": ndarray}, full masks,
layer rates, the round trainer) goes through an engine (lth_tf.experiment.engines): tf_keras
(lth_tf.training.engine) or Keras 3 on TensorFlow, JAX or PyTorch (lth_tf.keras3.engine, --engine=keras3). This
module itself imports no TensorFlow.

    cfg = Config(model="lenet300_100", dataset="mnist1d", rounds=3).resolve()
    run(cfg, Store(cfg.results_dir()), on_event=print)
"""
from __future__ import annotations

import contextlib

import numpy as np

from lth_tf.data import loading
from lth_tf.data import options as data_options
from lth_tf.data.pipelines import Dataset
from lth_tf.experiment import engines
from lth_tf.experiment.config import AT_INIT, Config, ConfigError
from lth_tf.experiment.plan import Event, PairSpec, data_key, pair_key, train_spec
from lth_tf.experiment.store import Store
from lth_tf.pruning import arrays as pruning
from lth_tf.training import convergence
from lth_tf.training.jobs import BackupSlot, Diverged, Job


def run(config: Config, store: Store, on_event=None, dataset: Dataset | None = None,
        strategy=None, pairs: PairSpec | None = None) -> list:
    """Runs every unfinished round of the experiment (and, with `pairs`, every unfinished instability pair);
    returns the store's rows. The store must be open."""
    emit = on_event or (lambda event: None)
    if pairs is not None and config.engine != "tf_keras":
        raise ConfigError(f"the instability analysis runs on --engine=tf_keras only (its linear interpolation, "
                          f"lth_tf.experiment.interpolation, is tf_keras code), not on --engine={config.engine}")
    engine = engines.make(config, strategy)
    dataset = dataset or loading.load(config.dataset, config.data_dir, seed=config.seed)
    # --train_subset and --random_labels (seeded by --seed), applied to whichever dataset was given or loaded.
    dataset = data_options.apply(dataset, config.train_subset, config.random_labels, seed=config.seed)
    ids = config.trial_ids()
    width = config.parallel_trials
    for group in [ids[i:i + width] for i in range(0, len(ids), width)]:
        with contextlib.ExitStack() as locks:
            for trial in group:  # never two processes on one trial (a full run and a --trial_index run)
                locks.enter_context(store.trial_lock(trial))
            with engine.precision():  # models are built inside the trial
                trials = [_Trial(config, store, dataset, trial, emit, engine, pairs) for trial in group]
                _Group(trials, width).run()
    emit(Event("done"))
    return store.results()


class _Group:
    """Runs trials side by side: each trial is a generator that yields lists of training jobs (rounds, or the
    copies of a pair) and is sent their results; the group trains compatible jobs of all its trials together
    on one RoundTrainer, stacked (lth_tf.training.stacked) when --parallel_trials > 1. With one trial and width 1 this
    is the sequential experiment: each job trains alone on the trial's own model."""

    def __init__(self, trials: list, width: int):
        self.trials = trials
        c = trials[0].config
        per_trial = max(2 if trials[0].pairs is not None else 1,
                        len(c.control_rounds or range(1, c.rounds + 1)) if len(c.variants) > 1 else 1)
        # Networks beyond the jobs a step can have would only train idle.
        self.capacity = 1 if width == 1 else max(1, min(width, len(trials) * per_trial))
        self._trainer = None
        for trial in trials:
            trial.width = self.capacity

    def trainer(self):
        if self._trainer is None:  # built lazily: a fully finished trial trains (and traces) nothing
            first = self.trials[0]
            first.engine.set_seed(first.seed)
            # The trials' own models are the stacked networks (jobs run on any of them: a trial keeps no state
            # in its model between jobs); more are built when the trials can have more jobs at once.
            nets = [trial.model for trial in self.trials][:self.capacity]
            nets += [first.build(first.seed + 7919 * i) for i in range(self.capacity - len(nets))]
            spec = train_spec(first.config, first.seed, distributed=first.strategy is not None)
            self._trainer = first.engine.trainer(nets[:self.capacity], first.data, spec)
        return self._trainer

    def run(self) -> None:
        steps = {i: trial.run() for i, trial in enumerate(self.trials)}
        pending = {}

        def advance(i, value):
            try:
                pending[i] = steps[i].send(value)
            except StopIteration:
                pending.pop(i, None)

        for i in steps:
            advance(i, None)
        while pending:
            # The first waiting request's kind (start iteration, record_at) decides; every waiting request of
            # the same kind that fits joins it.
            key = next(iter(pending.values()))[0].batch_key()
            chosen, jobs = [], []
            for i, request in pending.items():
                if request[0].batch_key() == key and len(jobs) + len(request) <= self.capacity:
                    chosen.append((i, len(request)))
                    jobs.extend(request)
            try:
                results = self.trainer().train_many(jobs)
            except Diverged as e:
                # Nothing of a diverged round is stored: not even its last backup (resuming it would only
                # diverge again); the other jobs' backups stay.
                slot = jobs[e.index].backup
                if slot is not None and slot.clear is not None:
                    slot.clear()
                raise
            for i, count in chosen:
                advance(i, results[:count])
                results = results[count:]


class _Trial:
    def __init__(self, config, store, dataset, trial, emit, engine, pairs=None):
        self.config, self.store, self.data, self.trial, self.emit = config, store, dataset, trial, emit
        self.pairs, self.engine = pairs, engine
        self.seed = config.seed * 1000 + trial
        self.strategy = getattr(engine, "strategy", None)
        self.total_iterations = train_spec(config, self.seed).total_iterations
        self.width = 1  # how many jobs one request may hold (_Group sets it)

    # ---- building blocks -----------------------------------------------------------------------------
    def build(self, seed: int):
        return self.engine.build(self.data, seed)

    def run(self):
        """The trial, as a generator: it yields lists of training Jobs and is sent their RoundResults (_Group)."""
        self.model = self.build(self.seed)
        self.initial = self.store.load_weights(self.trial, "initial")
        if self.initial is None:
            self.initial = self.engine.snapshot(self.model)
            self.store.save_weights(self.trial, "initial", self.initial)
        c = self.config
        self.rates = self.engine.layer_rates(self.model)
        yield from self.run_lottery()
        for variant in c.variants:
            if variant != "lottery":
                yield from self.run_control(variant)
        if self.pairs is not None:
            yield from self.run_pairs()

    def train_round(self, variant, round_, start, masks, record_at=None, start_iteration=0):
        """Trains one round (a generator: `result, weights = yield from self.train_round(...)`)."""
        [outcome] = yield from self.train_rounds([(variant, round_, start, masks, record_at, start_iteration)])
        return outcome

    def train_rounds(self, rounds: list):
        """Trains rounds [(variant, round, start, masks, record_at, start_iteration)] side by side and stores
        each; returns their (result, weights)."""
        jobs = [self.round_job(*spec) for spec in rounds]
        results = yield jobs
        return [self.finish_round(*spec[:4], result) for spec, result in zip(rounds, results)]

    def round_job(self, variant, round_, start, masks, record_at, start_iteration) -> Job:
        self.emit(Event("start", self.trial, variant, round_, {"weights_remaining": pruning.remaining(masks)}))
        callbacks = self.engine.round_callbacks(self.store.root, self.trial, variant, round_)  # --tensorboard
        store, trial = self.store, self.trial
        # The round's data order depends on (trial seed, round) only, so a resumed or re-run round sees the
        # same batches; the backup (after each eval_every chunk) lets a killed run continue mid-round.
        return Job(
            start, masks, record_at=record_at, callbacks=tuple(callbacks),
            on_eval=lambda p: self.emit(Event("eval", self.trial, variant, round_,
                                              dict(p, total=self.total_iterations))),
            data_key=data_key(self.seed, round_),
            backup=BackupSlot(load=lambda: store.load_backup(trial, variant, round_),
                                       save=lambda arrays: store.save_backup(trial, variant, round_, arrays),
                                       clear=lambda: store.clear_backup(trial, variant, round_)),
            on_resume=lambda it: self.emit(Event("resume", trial, variant, round_, {"iteration": it})),
            start_iteration=start_iteration, label=f"trial {trial} {variant} round {round_}")

    def finish_round(self, variant, round_, start, masks, result):
        c, trial = self.config, self.trial
        weights = result.weights
        best = result.early_stop
        final = result.curve[-1]
        row = {"trial": self.trial, "variant": variant, "round": round_, "pruning": c.pruning,
               "weights_remaining": pruning.remaining(masks),
               "early_stop_iteration": best["iteration"],
               "test_accuracy_at_early_stop": best["test_accuracy"],
               "val_loss_at_early_stop": best["val_loss"],
               "test_accuracy": final["test_accuracy"], "test_loss": final["test_loss"],
               "iterations": result.iterations, "train_seconds": round(result.seconds, 3)}
        # arXiv v1 footnote 1's measure beside the early stop; None (an empty cell) when the round never converged.
        converged = convergence.at_convergence(result.curve) or {}
        row["convergence_iteration"] = converged.get("iteration")
        row["test_accuracy_at_convergence"] = converged.get("test_accuracy")
        row.update({f"remaining_{name}": float(m.mean()) for name, m in masks.items()})
        if variant == "lottery" and round_ == 0:
            # Before result.json: a round 0 that counts as finished always has its rewind target stored.
            recorded = result.rewind_weights  # the iteration-k weights with late rewinding, else None
            self.store.save_weights(trial, "rewind", recorded if recorded is not None else self.initial)
        self.store.save_round(self.trial, variant, round_, masks=masks, curve=result.curve,
                              start_weights=_masked(start, masks), weights=weights, row=row)
        self.store.clear_backup(self.trial, variant, round_)
        self.emit(Event("round", self.trial, variant, round_, row))
        return result, weights

    # ---- the winning ticket --------------------------------------------------------------------------
    def run_lottery(self):
        c, trial = self.config, self.trial
        masks = self.engine.full_masks(self.model)
        trained = round0 = None
        rewind_to = self.store.load_weights(trial, "rewind")
        if rewind_to is None and c.rewind_iteration == 0:
            rewind_to = self.initial  # the same thing; directories written before rewind_weights.npz came first
        for r in range(c.rounds + 1):
            if self.store.is_done(trial, "lottery", r):
                self.emit(Event("skip", trial, "lottery", r))
                self.store.clear_backup(trial, "lottery", r)  # left if a crash came right after result.json
                masks = self.store.load_round(trial, "lottery", r, "masks")
                next_pending = r < c.rounds and not self.store.is_done(trial, "lottery", r + 1)
                # Only the last finished round's weights are needed, to prune the next one.
                trained = self.store.load_round(trial, "lottery", r, "weights") if next_pending else None
                continue
            if r > 0 and c.pruning in AT_INIT:
                masks = self.at_init_masks(r, self._rewind_target(rewind_to))
            elif r > 0 and c.pruning == "oneshot":
                if round0 is None:
                    round0 = self.store.load_round(trial, "lottery", 0, "weights")
                if c.pruning_scope == "global":
                    masks = pruning.prune_oneshot_global(_kernels(round0, masks), self.rates, r)
                else:
                    masks = pruning.prune_oneshot(_kernels(round0, masks), pruning.expected_remaining(self.rates, r))
            elif r > 0:
                prune = pruning.prune_global if c.pruning_scope == "global" else pruning.prune
                masks = prune(_kernels(trained, masks), masks, self.rates)
            if r == 0:
                record = c.rewind_iteration if c.rewind_iteration > 0 else None
                result, trained = yield from self.train_round("lottery", 0, self.initial, masks, record_at=record)
                rewind_to = result.rewind_weights if record else self.initial
                round0 = trained
            else:
                # Late rewinding: from the iteration-k weights, the k..T part of the schedule.
                _, trained = yield from self.train_round("lottery", r, self._rewind_target(rewind_to), masks,
                                                         start_iteration=c.rewind_iteration)

    def _rewind_target(self, rewind_to):
        if rewind_to is None:  # only with --rewind_iteration > 0: the iteration-k weights were lost
            raise RuntimeError(f"{self.store.trial_dir(self.trial)}/rewind_weights.npz is missing; delete "
                               f"{self.store.round_dir(self.trial, 'lottery', 0)} to train round 0 again")
        return rewind_to

    # ---- pruning at initialization -------------------------------------------------------------------
    def at_init_masks(self, round_: int, start: dict, invert: bool = False) -> dict:
        """The method's masks for `round_`, scored on `start` (W_0 or W_k): one shot to the exact weight count
        IMP keeps at round `round_` (`pruning.level_counts`, per layer or per global pool).
        A pure function of (trial seed, round): a resumed or inverted round scores the same batch."""
        from lth_tf.pruning import init_scores  # tf_keras only (Config refuses it with --engine=keras3)
        c = self.config
        self.engine.restore(self.model, start, masks={})
        x = y = None
        if c.pruning in init_scores.NEEDS_DATA:
            x, y = init_scores.batch_per_class(self.data.x_train, self.data.y_train, c.score_examples_per_class,
                                               np.random.default_rng([self.seed, round_, 3]))
        sizes = {name: m.size for name, m in self.engine.full_masks(self.model).items()}
        return init_scores.masks_at_level(
            c.pruning, self.model, pruning.level_counts(sizes, self.rates, round_, c.pruning_scope),
            c.pruning_scope, x, y, rng=np.random.default_rng([self.seed, round_, 4]), invert=invert,
            synflow_iterations=c.synflow_iterations or 100)

    # ---- the paper's controls ------------------------------------------------------------------------
    def reinit_start(self, rng) -> dict:
        """A fresh draw of the same initialisers, other seed per round (Section 2.2)."""
        return self.engine.snapshot(self.build(seed=int(rng.integers(1 << 30))))

    def run_control(self, variant: str):
        """The control's rounds; they depend only on the lottery rounds, so up to `width` train side by side."""
        c, trial = self.config, self.trial
        rewind_to = self.store.load_weights(trial, "rewind")
        batch = []
        for r in range(1, c.rounds + 1):
            if c.control_rounds and r not in c.control_rounds:
                continue  # --control_rounds: the controls at chosen levels only (they cost a round each)
            if self.store.is_done(trial, variant, r):
                self.emit(Event("skip", trial, variant, r))
                self.store.clear_backup(trial, variant, r)
                continue
            masks = self.store.load_round(trial, "lottery", r, "masks")
            rng = np.random.default_rng([self.seed, r, 1 if variant == "reinit" else 2])
            if variant == "reinit":
                start = self.reinit_start(rng)
            elif variant == "shuffle":  # same count per layer, random positions, initial values left in place
                masks, start = pruning.shuffle_masks(masks, rng), dict(rewind_to)
            elif variant == "invert":
                masks, start = self.inverted_masks(r, masks, rewind_to), dict(rewind_to)
            else:  # rearrange: same count per layer, random positions, the ticket's initial values
                masks, moved = pruning.rearrange(masks, _kernels(rewind_to, masks), rng)
                start = dict(rewind_to)
                start.update({f"{name}/kernel": kernel for name, kernel in moved.items()})
            # The controls train what the ticket trains: from iteration k (0 without late rewinding) to T.
            batch.append((variant, r, start, masks, None, c.rewind_iteration))
            if len(batch) == self.width:
                yield from self.train_rounds(batch)
                batch = []
        if batch:
            yield from self.train_rounds(batch)

    def inverted_masks(self, round_: int, ticket: dict, rewind_to: dict) -> dict:
        """`invert`: the weights the round's pruning step would remove are kept instead."""
        c = self.config
        if c.pruning in AT_INIT:
            return self.at_init_masks(round_, rewind_to, invert=True)
        # IMP: per layer the ticket's count, among the weights the ticket was pruned from (the previous round's
        # survivors, or all of round 0's for one-shot), those of the smallest trained magnitudes.
        source = 0 if c.pruning == "oneshot" else round_ - 1
        trained = self.store.load_round(self.trial, "lottery", source, "weights")
        eligible = self.store.load_round(self.trial, "lottery", source, "masks")
        scores = {name: -np.abs(kernel) for name, kernel in _kernels(trained, ticket).items()}
        return pruning.masks_from_scores(scores, {n: int(m.sum()) for n, m in ticket.items()}, "layerwise",
                                         eligible=eligible)

    # ---- instability analysis (Frankle et al., ICML 2020) -------------------------------------------
    def run_pairs(self):
        from lth_tf.experiment import interpolation  # tf_keras only (run() refuses pairs on other engines)
        c, trial, spec = self.config, self.trial, self.pairs
        k = c.rewind_iteration
        rewind_to = self.store.load_weights(trial, "rewind")
        for r in range(c.rounds + 1):
            lottery_masks = self.store.load_round(trial, "lottery", r, "masks")
            for variant in spec.variants:
                if r == 0 and variant != "lottery":
                    continue  # round 0 is the dense network: no mask to reinitialise or shuffle
                stored = self.store.load_pair(trial, variant, r)
                if stored is not None and spec.matches(stored):
                    self.emit(Event("pair_skip", trial, variant, r))
                    continue
                start, masks = self.pair_start(variant, r, lottery_masks, rewind_to)
                copies = yield from self.train_copies(variant, r, start, masks)
                self.emit(Event("pair_path", trial, variant, r))
                path = interpolation.linear_path(
                    self.model, copies[0]["weights"], copies[1]["weights"], self.path_data(), masks=masks,
                    alphas=spec.alphas, bn=spec.bn, bn_data=self.bn_data(), bn_batches=spec.bn_batches,
                    bn_batch_size=c.batch_size)
                barrier = path.instability
                result = {"trial": trial, "variant": variant, "rewind_iteration": k, "round": r,
                          "weights_remaining": pruning.remaining(masks),
                          "instability_test": barrier["test"], "instability_train": barrier["train"],
                          # The copies' own test accuracies (the path's end points), averaged.
                          "accuracy_end_points": 1.0 - (path.errors["test"][0] + path.errors["test"][-1]) / 2,
                          "copy_test_accuracy": [copy["row"]["test_accuracy"] for copy in copies],
                          "alphas": path.alphas, "errors": path.errors, "bn": path.bn,
                          "path": spec.path_identity(), "noise_seeds": [int(s) for s in spec.noise_seeds]}
                self.store.save_pair(trial, variant, r, result, masks)
                self.emit(Event("pair", trial, variant, r, result))

    def pair_start(self, variant, round_, lottery_masks, rewind_to) -> tuple:
        """(start weights, masks) of a pair: W_k under the IMP mask; the controls as in `run_control`."""
        if variant == "lottery":
            return rewind_to, lottery_masks
        if variant == "reinit":
            return self.reinit_start(np.random.default_rng([self.seed, round_, 1])), lottery_masks
        # random pruning: each layer keeps as many weights as the IMP mask, at random positions (open_lth's
        # randomly_prune, layerwise), starting from W_k.
        return rewind_to, pruning.random_masks(lottery_masks, np.random.default_rng([self.seed, round_, 3]))

    def train_copies(self, variant, round_, start, masks):
        """Trains (or loads) the two copies of a pair: start under masks, iterations k..T, each its own SGD
        noise; side by side when `width` allows. Returns [{"weights", "row"}] for copies 0 and 1."""
        copies, todo = {}, []
        for copy in range(2):
            key = pair_key(self.seed, round_, self.pairs.noise_seeds[copy])
            stored = self.store.load_copy(self.trial, variant, round_, copy)
            if stored is not None and stored["row"].get("data_key") == key:
                copies[copy] = stored
            else:
                todo.append((copy, key))
        for i in range(0, len(todo), self.width):
            batch = todo[i:i + self.width]
            results = yield [self.copy_job(variant, round_, copy, key, start, masks) for copy, key in batch]
            for (copy, key), result in zip(batch, results):
                copies[copy] = self.finish_copy(variant, round_, copy, key, result)
        return [copies[0], copies[1]]

    def copy_job(self, variant, round_, copy, key, start, masks) -> Job:
        store, trial = self.store, self.trial
        self.emit(Event("start", trial, f"{variant}/copy{copy}", round_,
                        {"weights_remaining": pruning.remaining(masks)}))
        return Job(
            start, masks, data_key=key, start_iteration=self.config.rewind_iteration,
            backup=BackupSlot(load=lambda: store.load_backup(trial, variant, round_, copy=copy),
                                       save=lambda arrays: store.save_backup(trial, variant, round_, arrays,
                                                                             copy=copy),
                                       clear=lambda: store.clear_backup(trial, variant, round_, copy=copy)),
            label=f"trial {trial} {variant} round {round_} copy {copy}")

    def finish_copy(self, variant, round_, copy, key, result) -> dict:
        final = result.curve[-1]
        row = {"data_key": key, "test_accuracy": final["test_accuracy"], "test_loss": final["test_loss"],
               "iterations": result.iterations, "train_seconds": round(result.seconds, 3)}
        self.store.save_copy(self.trial, variant, round_, copy, weights=result.weights, curve=result.curve, row=row)
        self.store.clear_backup(self.trial, variant, round_, copy=copy)
        return {"weights": result.weights, "row": row}

    def path_data(self) -> dict:
        d, n = self.data, self.pairs.train_subset
        return {"test": (d.x_test, d.y_test), "train": (d.x_train[:n], d.y_train[:n])}

    def bn_data(self):
        if self.pairs.bn != "recompute":
            return None
        d = self.data
        order = np.random.default_rng([self.seed, 4]).permutation(len(d.x_train))
        take = order[:self.pairs.bn_batches * self.config.batch_size]
        return d.x_train[take], d.y_train[take]


def _kernels(weights: dict, masks: dict) -> dict:
    return {name: weights[f"{name}/kernel"] for name in masks}


def _masked(weights: dict, masks: dict) -> dict:
    out = dict(weights)
    for name, mask in masks.items():
        out[f"{name}/kernel"] = weights[f"{name}/kernel"] * mask
    return out
