"""Benchmark: how plan, partition and memory analysis scale with the node count.

Prints wall time per stage and the peak memory above capture for synthetic graphs of 1k, 5k, 20k
and 50k op nodes and for an exported nn.LSTM whose recurrence unrolls into about 20k nodes. Each
graph is measured in a fresh process: the graph is built (synthetic) or captured (LSTM) first,
then the process's peak-RSS mark is reset (/proc/self/clear_refs) and the stages run, so that
"peak MB" is what the stages needed on top of the captured graph. Stage times are the process's
CPU seconds (what the stages cost, whatever else shares the machine; single-threaded, so equal to
wall time on an idle one); "wall s" is the wall time of all three.

Synthetic graphs are residual blocks `x + linear(gelu(linear(x)))` sharing their weights, every
fourth block with an op no rule maps (lgamma) inside its branch: host nodes in residual branches
are what makes partitioning hard (a device region that leaves to the host and comes back). They are
built directly as aten graphs from one traced block (capture of 50k nodes would take minutes and
is not what is measured). Target (issue 13): 20k nodes in under 5 s and under 1 GB above capture.

    .venv/bin/python bench/scale.py [1000 5000 20000 50000 lstm]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tabulate import tabulate

SIZES = ("1000", "5000", "20000", "50000", "lstm")
LSTM_STEPS, LSTM_LAYERS, LSTM_WIDTH = 700, 2, 64  # 20,322 op nodes


def synthetic(nodes: int):
    """An aten GraphModule of about `nodes` op nodes (see the module docstring)."""
    import torch
    from torch import fx, nn

    from fxport.tracing import export

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(32, 32), nn.Linear(32, 32)

        def forward(self, x):
            return x + self.b(torch.lgamma(nn.functional.gelu(self.a(x))))

    template = export(Block(), (torch.randn(4, 32),)).graph
    placeholders = [n for n in template.nodes if n.op == "placeholder"]
    ops = [n for n in template.nodes if n.op == "call_function"]
    graph = fx.Graph()
    inputs = []
    for n in placeholders:
        inputs.append(graph.placeholder(n.name))
        inputs[-1].meta["val"] = n.meta["val"]
    x, count, i = inputs[-1], 0, 0  # the weights come first, the user input last
    while count < nodes:
        env = dict(zip(placeholders, inputs[:-1] + [x]))
        for n in ops:
            if n.target == torch.ops.aten.lgamma.default and i % 4:
                env[n] = env[n.args[0]]  # only every fourth block has the host op
                continue
            new = graph.call_function(n.target, fx.map_arg(n.args, env.__getitem__), dict(n.kwargs))
            new.meta = dict(n.meta)
            env[n] = new
            count += 1
        x = env[ops[-1]]
        i += 1
    graph.output((x,))
    return fx.GraphModule(torch.nn.Module(), graph)


def lstm_graph():
    import torch
    from torch import nn

    from fxport.tracing import trace

    class LSTMHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(LSTM_WIDTH, LSTM_WIDTH, num_layers=LSTM_LAYERS, batch_first=True)
            self.head = nn.Linear(LSTM_WIDTH, 10)

        def forward(self, x):
            y, _ = self.lstm(x)
            return self.head(y[:, -1])

    cap = trace(LSTMHead().eval(), (torch.randn(1, LSTM_STEPS, LSTM_WIDTH),), name="lstm")
    return cap.graphs[0].program.graph_module


def _rss_mb(field: str) -> float:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(size: str) -> dict:
    from fxport.capture.records import records_from_graph
    from fxport.partition import partition
    from fxport.plan import plan_graph
    from fxport.runtime.devices import open_session_device
    from fxport.runtime.run_memory import explain_run

    start = time.perf_counter()
    gm = lstm_graph() if size == "lstm" else synthetic(int(size))
    records = records_from_graph(gm.graph)  # capture makes them (fxport trace's ops.json)
    dev = open_session_device("mock", None)  # footprints are measured on it (cached on disk)
    built = time.perf_counter() - start
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark: what follows is measured above the captured graph
    base = _rss_mb("VmRSS")
    seconds, wall = {}, time.perf_counter()
    t = time.process_time()
    plan = plan_graph(gm.graph)
    seconds["plan"] = time.process_time() - t
    t = time.process_time()
    parts = partition(gm, plan)
    seconds["partition"] = time.process_time() - t
    t = time.process_time()
    explain_run(parts.graph_module, records, dev, "dram", [])
    seconds["memory"] = time.process_time() - t
    wall = time.perf_counter() - wall
    return {
        "graph": "nn.LSTM unrolled" if size == "lstm" else "synthetic",
        "nodes": len(plan.nodes),
        "host": len(plan.nodes) - plan.lowered,
        "partitions": len(parts.partitions),
        "capture_s": built,
        **seconds,
        "total_s": sum(seconds.values()),
        "wall_s": wall,
        "peak_mb": _rss_mb("VmHWM") - base,
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(child(argv[1])))
        return 0
    rows = []
    for size in argv or SIZES:
        proc = subprocess.run([sys.executable, __file__, "--child", size], capture_output=True, text=True)
        if proc.returncode != 0:
            rows.append([size, "FAILED: " + (proc.stderr.strip().splitlines() or [""])[-1][:80]])
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(
            [
                r["graph"],
                r["nodes"],
                r["host"],
                r["partitions"],
                f"{r['capture_s']:.1f}",
                f"{r['plan']:.2f}",
                f"{r['partition']:.2f}",
                f"{r['memory']:.2f}",
                f"{r['total_s']:.2f}",
                f"{r['wall_s']:.2f}",
                f"{r['peak_mb']:.0f}",
            ]
        )
        print(f"measured {size}", file=sys.stderr)
    print(
        tabulate(
            rows,
            headers=[
                "graph",
                "op nodes",
                "host",
                "partitions",
                "build/capture s",
                "plan s",
                "partition s",
                "memory s",
                "total s",
                "wall s",
                "peak MB above capture",
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
