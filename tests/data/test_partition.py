"""Partitioners: disjoint covers, seeded, and heterogeneity that follows their parameters."""

import numpy as np
import pytest

from flcore.config import ExperimentConfig
from flcore.data.partition import PARTITIONERS, PartitionError, heterogeneity, label_counts, partition, reads_clients

LABELS = np.repeat(np.arange(10), 100)  # 1,000 samples, 100 per class


def natural_clients(k, n=len(LABELS), seed=7):
    """Client ids 0..k-1 for n samples, each used at least twice, in shuffled order with uneven sizes."""
    rng = np.random.default_rng(seed)
    ids = np.concatenate([np.arange(k), np.arange(k), rng.integers(0, k, n - 2 * k) ** 2 % k])
    return rng.permutation(ids)


def split(seed=0, labels=LABELS, clients=None, **kw):
    c = ExperimentConfig.model_construct(**{**ExperimentConfig().model_dump(), "num_clients": 10, **kw})
    if c.partition != "natural":
        c = ExperimentConfig.create(**c.model_dump())
    if clients is None and c.partition == "natural":
        clients = natural_clients(c.num_clients, len(labels))
    return partition(labels, c, np.random.default_rng(seed), clients)


@pytest.mark.parametrize("kind", PARTITIONERS.names())
def test_every_partitioner_is_a_disjoint_cover(kind):
    parts = split(partition=kind, num_clients=17)
    assert len(parts) == 17
    together = np.concatenate(parts)
    assert len(together) == len(LABELS)
    assert np.array_equal(np.sort(together), np.arange(len(LABELS)))
    assert min(len(p) for p in parts) >= 2  # min_samples_per_client default


@pytest.mark.parametrize("kind", PARTITIONERS.names())
def test_same_seed_same_split_other_seed_other_split(kind):
    a, b, c = split(0, partition=kind), split(0, partition=kind), split(1, partition=kind)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    if kind == "natural":  # the data's own split: no randomness to vary
        assert all(np.array_equal(x, y) for x, y in zip(a, c))
    else:
        assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_only_the_natural_partitioner_reads_client_ids():
    assert [n for n in PARTITIONERS.names() if reads_clients(PARTITIONERS.get(n))] == ["natural"]


def test_natural_split_gives_each_client_exactly_its_own_samples():
    clients = natural_clients(13)
    parts = split(partition="natural", num_clients=13, clients=clients)
    for k, part in enumerate(parts):
        assert np.array_equal(part, np.flatnonzero(clients == k))  # client k holds exactly id k's samples, in order
    counts = label_counts(LABELS, parts, 10)
    assert counts.sum(1).tolist() == np.bincount(clients).tolist()


def test_natural_split_refuses_another_number_of_clients_naming_num_clients():
    with pytest.raises(PartitionError) as err:
        split(partition="natural", num_clients=12, clients=natural_clients(13))
    assert err.value.field == "num_clients"
    assert str(err.value).startswith("num_clients=12 does not match the data") and "has 13 natural clients" in str(err.value)
    assert "set num_clients=13" in str(err.value)


def test_natural_split_refuses_data_without_clients_naming_partition():
    c = ExperimentConfig.model_construct(**{**ExperimentConfig().model_dump(), "partition": "natural"})
    with pytest.raises(PartitionError) as err:
        partition(LABELS, c, np.random.default_rng(0), clients=None)
    assert err.value.field == "partition"
    assert str(err.value).startswith("partition='natural' needs data that says which client each sample comes from")


def test_other_partitioners_ignore_client_ids():
    with_ids = split(partition="dirichlet", clients=natural_clients(10))
    without = split(partition="dirichlet")
    assert all(np.array_equal(a, b) for a, b in zip(with_ids, without))


def test_dirichlet_large_alpha_is_close_to_iid_and_small_alpha_concentrates():
    def stats(**kw):
        return heterogeneity(label_counts(LABELS, split(**kw), 10))

    iid, big, small = stats(partition="iid"), stats(partition="dirichlet", alpha=1000), stats(partition="dirichlet", alpha=0.05)
    assert big.distance_from_global < 0.1
    # a random IID deal of 100 samples has sampling noise; Dir(1000) is at least that close
    assert big.distance_from_global <= iid.distance_from_global + 0.02
    assert small.distance_from_global > 0.6
    assert small.classes_per_client < 4 < big.classes_per_client


def test_dirichlet_refuses_impossible_minimum_with_a_sentence():
    with pytest.raises(PartitionError, match=r"alpha=0\.01.*min_samples_per_client=60"):
        split(partition="dirichlet", alpha=0.01, min_samples_per_client=60)


def test_too_many_clients_for_the_data():
    with pytest.raises(PartitionError, match="num_clients=600 x min_samples_per_client=2 needs 1200"):
        split(partition="iid", num_clients=600)


def test_shards_give_each_client_k_labels():
    for k in (1, 2, 3):
        counts = label_counts(LABELS, split(partition="shards", shards_per_client=k), 10)
        # 10 clients x k shards of 100/k samples, shards never straddle a label here when k divides 100
        if 100 % k == 0:
            assert ((counts > 0).sum(1) <= k).all()
        assert counts.sum() == len(LABELS)


def test_shards_refuse_more_shards_than_samples():
    with pytest.raises(PartitionError, match="shards_per_client=100"):
        split(partition="shards", shards_per_client=100, num_clients=20)


def test_quantity_skew_varies_sizes_but_not_labels():
    parts = split(partition="quantity_skew", quantity_sigma=2.0, min_samples_per_client=5)
    sizes = np.array([len(p) for p in parts])
    assert sizes.min() >= 5 and sizes.max() > 3 * np.median(sizes)
    power = split(partition="quantity_skew", quantity_distribution="powerlaw", quantity_sigma=1.5)
    assert sum(len(p) for p in power) == len(LABELS)


def test_heterogeneity_on_hand_computed_counts():
    counts = np.array([[2, 0], [1, 1]])  # global mix 3/4, 1/4
    h = heterogeneity(counts)
    assert h.per_client["classes"].tolist() == [1, 2]
    assert h.per_client["label_entropy_bits"].tolist() == pytest.approx([0.0, 1.0])
    assert h.per_client["distance_from_global"].tolist() == pytest.approx([0.25, 0.25])
    assert h.classes_per_client == 1.5 and h.size_cv == 0.0
