"""The federation: what happens in a round and what shapes it (the round loop, who is online and
sampled, the simulated clock, attacks, privacy, compression, client metrics)."""
