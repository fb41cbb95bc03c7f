"""Batch samplers: every example exactly once per epoch, seeded, and bucketing really cuts padding."""

from __future__ import annotations

import pytest
import torch

from apex.train.batching import BucketSampler, ShuffleSampler


def _epochs(sampler, n_epochs: int, batches_per_epoch: int) -> list[list[list[int]]]:
    stream = iter(sampler)
    return [[next(stream) for _ in range(batches_per_epoch)] for _ in range(n_epochs)]


def _squad_like(n_docs: int = 120, seed: int = 0) -> tuple[list[int], list[str]]:
    """Documents of 40-256 tokens with 1-7 questions each, as in SQuAD: (length per example, doc per example)."""
    rng = torch.Generator().manual_seed(seed)
    lengths, groups = [], []
    for doc in range(n_docs):
        length = int(torch.randint(40, 257, (1,), generator=rng))
        for _ in range(int(torch.randint(1, 8, (1,), generator=rng))):
            lengths.append(length)
            groups.append(f"d{doc}")
    return lengths, groups


def test_shuffle_sampler_is_the_old_order() -> None:
    """Bucketing off gives exactly the batches of the loop before it: randperm of the run's seeded generator."""
    generator = torch.Generator().manual_seed(3)
    old = [torch.randperm(50, generator=generator).tolist() for _ in range(2)]
    expected = [epoch[i : i + 16] for epoch in old for i in range(0, 50, 16)]
    got = [b for epoch in _epochs(ShuffleSampler(50, 16, seed=3), 2, 4) for b in epoch]
    assert got == expected


@pytest.mark.parametrize("n, batch", [(1000, 32), (97, 8), (5, 8)])
def test_every_example_exactly_once_per_epoch(n: int, batch: int) -> None:
    lengths, groups = _squad_like()
    lengths, groups = (lengths * 10)[:n], (groups * 10)[:n]
    per_epoch = -(-n // batch)
    for sampler in (ShuffleSampler(n, batch, seed=1), BucketSampler(lengths, batch, seed=1, groups=groups)):
        for epoch in _epochs(sampler, 3, per_epoch):
            flat = [i for b in epoch for i in b]
            assert sorted(flat) == list(range(n)), type(sampler).__name__
            sizes = sorted(len(b) for b in epoch)
            assert sizes[1:] == [batch] * (per_epoch - 1) if per_epoch > 1 else sizes == [n]  # one short batch at most


def test_same_seed_same_batches_other_seed_other_batches() -> None:
    lengths, groups = _squad_like()

    def bucketed(seed: int):
        return _epochs(BucketSampler(lengths, 16, seed=seed, groups=groups), 2, 10)

    assert bucketed(0) == bucketed(0)
    assert bucketed(0) != bucketed(1)
    first, second = bucketed(0)
    assert first != second  # a new composition every epoch, not the same buckets replayed


def test_buckets_cut_padding_and_keep_paragraphs_apart() -> None:
    lengths, groups = _squad_like(n_docs=1367)  # the default run's training split: 1,367 paragraphs
    n = len(lengths)

    def padding_and_repeats(sampler) -> tuple[float, int]:
        epoch = sampler.epoch()
        padded = sum(max(lengths[i] for i in b) * len(b) for b in epoch)
        repeats = sum(len(b) - len({groups[i] for i in b}) for b in epoch)
        return 1 - sum(lengths) / padded, repeats

    shuffled_pad, shuffled_repeats = padding_and_repeats(ShuffleSampler(n, 32, seed=0))
    bucket_pad, bucket_repeats = padding_and_repeats(BucketSampler(lengths, 32, seed=0, groups=groups))
    naive_pad, naive_repeats = padding_and_repeats(BucketSampler(lengths, 32, seed=0))
    # measured: 40% of a shuffled batch is padding, 11% of a bucketed one (4% without the paragraph rule)
    assert shuffled_pad > 0.3 and bucket_pad < 0.3 * shuffled_pad and naive_pad < bucket_pad
    # Without groups the questions of one paragraph (identical lengths) pile into one batch; with them they do not.
    assert naive_repeats > 5 * max(shuffled_repeats, 1)
    assert bucket_repeats <= shuffled_repeats


def test_bad_arguments_fail_clearly() -> None:
    with pytest.raises(ValueError, match="groups has 2 entries for 3 lengths"):
        BucketSampler([1, 2, 3], 2, seed=0, groups=["a", "b"])
    with pytest.raises(ValueError, match="window"):
        BucketSampler([1, 2, 3], 2, seed=0, window=0)
    with pytest.raises(ValueError, match="batch_size"):
        ShuffleSampler(3, 0, seed=0)
