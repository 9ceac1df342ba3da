"""Kill the index writer, not the whole ingest: hundreds of kills of the Edge engine mid-write, no model.

Each cycle starts a child that resumes the staging index as the ingest does (`EdgeStore.recover()`,
then `stage()`: the engine loads the shard a killed writer left), checks every stored point (its
text and float16 image vectors are the ones its payload's generation number says), then writes
more as the ingest does (batches of 8 upserts, most with an image vector; collab vector updates;
deletes; a flush now and then) and sometimes publishes. The parent SIGKILLs it at a random moment,
20% of the time during its start-up (the engine's load), else 0..--kill-within s after it loaded.
A child that exits otherwise than killed or 0 (-11 is SIGSEGV; 3: a stored point is wrong) is
printed with its output, and the state it started from is kept as WORKDIR-crash-N for a replay.

    python bench/kill_engine.py [--cycles 200] [--kill-within 1.5] [--workdir DIR] [--json]
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
from common import emit, format_table, log

N_IDS = 400  # point ids 1..N_IDS-1
NAMES = ("text", "image", "combined", "collab")
WRONG_POINT = 3


def vector(point: int, name: str, dim: int, generation: int) -> np.ndarray:
    """The unit vector `name` of `point` at `generation`, the same in every process."""
    v = np.random.default_rng([point, generation, NAMES.index(name)]).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def check(index: Any, dims: dict[str, int]) -> int:
    """Exit WRONG_POINT if a stored point's vectors are not its generation's; the number of points."""
    from app.vectorstore.base import content_hashes

    ids = sorted(content_hashes(index))
    for start in range(0, len(ids), 256):
        for m in index.retrieve(ids[start : start + 256], vectors=("text", "image")):
            generation = int(m.payload["content_hash"].split(":")[1])
            if not _right(m.vectors, m.payload["has_poster"], m.id, generation, dims):
                print(f"WRONG point {m.id} (generation {generation})", flush=True)
                sys.exit(WRONG_POINT)
    return len(ids)


def _right(stored: dict[str, np.ndarray], poster: bool, point: int, generation: int, dims: dict[str, int]) -> bool:
    if poster != ("image" in stored):
        return False
    if float(stored["text"] @ vector(point, "text", dims["text"], generation)) < 0.9999:
        return False
    return not poster or float(stored["image"] @ vector(point, "image", dims["image"], generation)) >= 0.998  # float16


def points(rng: random.Random, dims: dict[str, int]) -> list[Any]:
    from app.vectorstore import MoviePoint, SparseVector, payload_for

    batch = []
    for point in rng.sample(range(1, N_IDS), 8):
        generation, poster = rng.randint(0, 1000), rng.random() < 0.6
        named: dict[str, Any] = {n: vector(point, n, d, generation) for n, d in dims.items() if n != "collab"}
        if not poster:
            del named["image"]
        named["lexical"] = SparseVector((point, point + 7, 5000 + generation), (0.5, 0.25, 1.0))
        payload = payload_for(
            title=f"m{point}",
            year=1990 + point % 30,
            genres=["Drama"],
            popularity=1.0,
            vote_average=5.0,
            vote_count=3,
            has_poster=poster,
            content_hash=f"h:{generation}",
            local_rating_count=point % 4,
        )
        batch.append(MoviePoint(point, named, payload))
    return batch


def child(root: Path, seed: int) -> None:
    from app.embedding.factory import build_manifest
    from app.settings import Settings
    from app.vectorstore.base import content_hashes
    from app.vectorstore.edge import EdgeStore

    rng = random.Random(seed)
    store = EdgeStore(root)
    store.recover()
    manifest = build_manifest(Settings(data_dir=root.parent))
    dims = manifest.vector_dims()
    index = store.stage(manifest, rebuild=False)
    print(f"loaded {check(index, dims)} points", flush=True)
    for step in range(rng.randint(5, 60)):
        op = rng.random()
        if op < 0.75:
            index.upsert(points(rng, dims))
        elif op < 0.85:
            present = sorted(content_hashes(index))  # a point deleted in this run would be refused
            chosen = rng.sample(present, min(8, len(present)))
            index.set_vectors("collab", {i: vector(i, "collab", dims["collab"], 0) for i in chosen})
        elif op < 0.92:
            index.delete(rng.sample(range(1, N_IDS), 4))
        else:
            index.flush()
        print(f"step {step}", flush=True)
    if rng.random() < 0.3:
        print("publishing", flush=True)
        store.publish(index, manifest)
        print("published", flush=True)
    else:
        index.close()


def one_cycle(work: Path, n: int, kill_within: float, rng: random.Random) -> tuple[int, str, str]:
    """(the child's exit status, where it was when killed, its output)."""
    cmd = [sys.executable, "-X", "faulthandler", __file__, "--child", str(work / "qdrant"), str(n)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    loaded = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace"))
            if lines[-1].startswith("loaded"):
                loaded.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if rng.random() < 0.2:
        at = rng.uniform(1.0, 4.0)
    else:
        loaded.wait(timeout=120)
        at = rng.uniform(0.0, kill_within)
    try:
        proc.wait(timeout=at)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=300)
    reader.join(timeout=10)
    last = lines[-1].strip() if lines else ""
    where = {"": "start-up", "publishing": "publish", "published": "done"}.get(last, "writing")
    return proc.returncode, where, "".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cycles", type=int, default=200)
    p.add_argument("--kill-within", type=float, default=1.5, help="seconds after the child loaded the index")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/kill-engine"))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    work, rng = args.workdir, random.Random(args.seed)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    exits: dict[str, int] = {}
    moments: dict[str, int] = {}
    for n in range(args.cycles):
        before = work.with_name(f"{work.name}-before")
        shutil.rmtree(before, ignore_errors=True)
        subprocess.run(["cp", "-a", "--sparse=always", str(work), str(before)], check=True)
        rc, where, output = one_cycle(work, n, args.kill_within, rng)
        exits[str(rc)] = exits.get(str(rc), 0) + 1
        moments[where] = moments.get(where, 0) + 1
        if rc not in (0, -signal.SIGKILL):
            before.rename(work.with_name(f"{work.name}-crash-{n}"))
            log(f"cycle {n}: exit {rc}\n{output[-4000:]}")
        elif n % 25 == 0:
            log(f"cycle {n}: exits {exits}, killed during {moments}")
    row = {"cycles": args.cycles, **{f"exit {k}": v for k, v in exits.items()}, **moments}
    emit(format_table([row], list(row)), row, args.json)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
