"""Read back what a W&B offline run wrote (`run-<id>.wandb`), to check the metrics really got there.

The file is a LevelDB-style log of protobuf `Record`s: a 7-byte header, then
32 KiB blocks of chunks, each with a 7-byte header (crc, length, type).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes) -> list[bytes]:
    assert data[:4] == b":W&B", "not a W&B run file"
    records, pending, offset = [], b"", 7
    while offset + CHUNK_HEADER <= len(data):
        room = BLOCK - offset % BLOCK
        if room < CHUNK_HEADER:  # block trailer padding
            offset += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[offset:offset + CHUNK_HEADER])
        chunk = data[offset + CHUNK_HEADER:offset + CHUNK_HEADER + length]
        offset += CHUNK_HEADER + length
        if kind == FULL:
            records.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            records.append(pending + chunk)
        elif kind == 0 and length == 0:
            offset += BLOCK - offset % BLOCK if offset % BLOCK else 0
    return records


def read_run(path: Path) -> dict[str, Any]:
    """{'history': [row, ...], 'summary': {...}, 'config': {...}, 'exit_code': ..., 'run_id': ..., 'group': ...}."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, Any] = {"history": [], "summary": {}, "config": {}, "exit_code": None, "run_id": None,
                           "group": None}
    for payload in _payloads(Path(path).read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            out["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                   for item in record.history.item})
        elif kind == "summary":
            out["summary"].update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                   for item in record.summary.update})
        elif kind == "run":  # the config given to wandb.init travels with the run record
            out["config"].update({item.key: json.loads(item.value_json) for item in record.run.config.update})
            out["run_id"], out["group"] = record.run.run_id, record.run.run_group
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    return out


def offline_runs(root: Path) -> list[Path]:
    return sorted(Path(root).rglob("offline-run-*/run-*.wandb"))
