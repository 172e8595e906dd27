"""What a warm worker has loaded before it is handed a run.

The runner's forkserver imports this module once, when the server starts; every worker is then
forked from that process with torch, flcore, its registries and the dataset readers already
imported, instead of starting an interpreter and importing them per run (5-7 s on 2 cores).
Importing it touches no CUDA state and starts no threads, so forking after it is safe; OpenMP
reads its wait policy when torch loads it, so the policy is set here, first: threads that wait
sleep instead of spinning on cores that the web server and a watching browser need.
`LOADED_BY` is the pid of the process that imported this module: in a forked worker it is the
forkserver's, which is how a worker knows it started warm. (The runner, which imports this
module in each worker, is not imported here: the worker imports it, cheaply, to find its entry.)
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp

import numpy  # noqa: F401
import opacus.accountants.analysis.rdp  # noqa: F401  (the privacy accountant of runs with dp)
import pandas  # noqa: F401
import sklearn.datasets  # noqa: F401  (the digits dataset)
import torch  # noqa: F401

import flcore.data.vision
import flcore.federation.simulation
import flcore.service.budget
import flcore.store  # noqa: F401

LOADED_BY = os.getpid()
