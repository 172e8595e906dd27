"""`python -m flcore list` (every registry's choices) and `partition` (the split, without training)."""

from __future__ import annotations

import argparse

from flcore.cli.args import config_from_args, use_server_flags


# Commands -------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from flcore.config import registries
    from flcore.federation.metrics import CLIENT_METRICS

    titles = {"dataset": "datasets", "partition": "partitions", "model": "models", "strategy": "strategies",
              "attack": "attacks", "dp": "differential privacy (--dp)", "compression": "update compression (--compression)",
              "executor": "executors", "personalization": "personalized methods (--personalization)"}  # fmt: skip
    for field, registry in [*registries().items(), ("client metric", CLIENT_METRICS)]:
        title = titles.get(field, "per-client metrics (clients.csv)")
        print(f"{title}:")
        for e in registry.entries():
            params = f"  [settings: {', '.join(e.params)}]" if e.params else ""
            facts = f"({e.obj.size}; {'works offline' if e.obj.info.offline else 'downloaded when missing'}) " if field == "dataset" else ""
            print(f"  {e.name:<16} {facts}{e.description}{params}")
        print()
    from flcore import ray_support

    print(f"ray: {ray_support.describe()}")
    return 0


def cmd_partition(args: argparse.Namespace) -> int:
    from flcore.data.datasets import load_dataset
    from flcore.data.partition import split_counts, split_table

    use_server_flags(args)
    config = config_from_args(args)
    data = load_dataset(config)
    labels = data.y_train.numpy()
    table, stats = split_table(split_counts(labels, config, data.info.num_classes, data.train_clients))
    print(f"{config.dataset}: {len(labels)} training samples, {config.partition} split over {config.num_clients} clients")
    print(table.to_string(index=False))
    print()
    for key, value in stats.summary().items():
        print(f"{key:>22}: {value:.3f}")
    return 0
