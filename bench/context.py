"""What every workload needs: the running systems, the load generator, and a meter around them."""

from dataclasses import dataclass

from bench.environment import Systems, Target
from bench.procstat import CpuMeter
from bench.swarm import Swarm


@dataclass
class Context:
    systems: Systems
    swarm: Swarm

    def meter(self, target: Target) -> CpuMeter:
        """CPU of the server under test, of Redis and of the load generator."""
        return CpuMeter({"server": [target.pid], "redis": [self.systems.pid("redis")], "loadgen": self.swarm.pids})
