"""Which examples go into which batch: shuffled (the default) or length-bucketed, both seeded and epoch-exact.

Both samplers yield lists of example indices forever, epoch after epoch; within one epoch every example appears
exactly once, and the last batch of an epoch may be smaller. The order depends only on the seed (the run's own
``torch.Generator``, never a global RNG), so the same seed gives the same batches.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence

import torch


class ShuffleSampler:
    """A fresh random permutation per epoch, cut into consecutive batches: every length mixed in every batch."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(self) -> list[list[int]]:
        order = torch.randperm(self.n, generator=self.generator).tolist()
        return [order[start : start + self.batch_size] for start in range(0, self.n, self.batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            yield from self.epoch()


class BucketSampler(ShuffleSampler):
    """Length-bucketed batches: texts of similar length together, so a batch pads little.

    Per epoch: a random permutation is cut into windows of ``window`` batches; each window is sorted by length
    (ties keep the random order) and cut into batches; then the order of all the epoch's batches is shuffled. A
    window, not the whole epoch, is sorted so that batch composition stays random from epoch to epoch and seed to
    seed. With ``groups`` (e.g. the positive document of each example), an example whose group is already in the
    batch being filled waits for the next one: several questions about one paragraph have identical lengths and
    would otherwise land together, where the loss masks them as positives and the batch loses negatives.

    Bucketing changes *which* in-batch negatives a query meets (similar-length documents), so it changes what is
    trained: it is an option (``training.length_buckets``), off by default.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        window: int = 16,
        groups: Sequence[Hashable] | None = None,
    ) -> None:
        super().__init__(len(lengths), batch_size, seed)
        if window < 1:
            raise ValueError(f"window must be >= 1 batch, got {window}")
        if groups is not None and len(groups) != len(lengths):
            raise ValueError(f"groups has {len(groups)} entries for {len(lengths)} lengths")
        self.lengths, self.window, self.groups = list(lengths), window, groups

    def epoch(self) -> list[list[int]]:
        order = torch.randperm(self.n, generator=self.generator).tolist()
        span = self.window * self.batch_size
        batches: list[list[int]] = []
        for start in range(0, self.n, span):
            window = sorted(order[start : start + span], key=lambda i: -self.lengths[i])  # stable: ties stay random
            cut = [window[i : i + self.batch_size] for i in range(0, len(window), self.batch_size)]
            if self.groups is not None:
                self._separate_groups(cut)
            batches += cut
        shuffled = torch.randperm(len(batches), generator=self.generator).tolist()
        return [batches[i] for i in shuffled]

    def _separate_groups(self, batches: list[list[int]]) -> None:
        """Swap each repeated group out of its batch, with the nearest example of a neighbouring batch (closest in
        length) whose own group is new to this batch and whose batch lacks the repeated one. In place."""
        group = self.groups.__getitem__  # type: ignore[union-attr]
        for j, batch in enumerate(batches):
            seen: set[Hashable] = set()
            for pos in range(len(batch)):
                if group(batch[pos]) not in seen:
                    seen.add(group(batch[pos]))
                    continue
                here = {group(i) for i in batch}
                for k in sorted(range(len(batches)), key=lambda k: abs(k - j))[1:]:
                    there = {group(i) for i in batches[k]}
                    if group(batch[pos]) in there:
                        continue
                    candidates = range(len(batches[k])) if k > j else range(len(batches[k]) - 1, -1, -1)
                    swap = next((c for c in candidates if group(batches[k][c]) not in here), None)
                    if swap is not None:
                        batch[pos], batches[k][swap] = batches[k][swap], batch[pos]
                        break
                seen.add(group(batch[pos]))
