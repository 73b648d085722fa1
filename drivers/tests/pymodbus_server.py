#!/usr/bin/env python3
"""A pymodbus TCP or RTU server for the drivers' interoperability tests.

The register contents come from a JSON layout the Rust test writes: typed values at addresses,
with a word order. This script encodes them with its own code (Python's struct module, checked
against pymodbus's own converter for the orders pymodbus knows), so the drivers' codec is tested
against an encoder it shares nothing with.

Usage:
    pymodbus_server.py --layout FILE tcp --port PORT
    pymodbus_server.py --layout FILE rtu --device PATH --baud BAUD

Prints "READY" (and the port for TCP) on stdout once it serves, then runs until killed.
"""

import argparse
import asyncio
import json
import logging
import struct
import sys

from pymodbus.client import ModbusTcpClient
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

STRUCT = {
    "u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i",
    "u64": ">Q", "i64": ">q", "f32": ">f", "f64": ">d",
}
PYMODBUS_TYPE = {
    "u16": ModbusTcpClient.DATATYPE.UINT16, "i16": ModbusTcpClient.DATATYPE.INT16,
    "u32": ModbusTcpClient.DATATYPE.UINT32, "i32": ModbusTcpClient.DATATYPE.INT32,
    "u64": ModbusTcpClient.DATATYPE.UINT64, "i64": ModbusTcpClient.DATATYPE.INT64,
    "f32": ModbusTcpClient.DATATYPE.FLOAT32, "f64": ModbusTcpClient.DATATYPE.FLOAT64,
}


def words_of(data: bytes):
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def encode(kind: str, order: str, value):
    """The registers of a typed value, by the letter naming of word orders."""
    if kind.startswith("string:"):
        n = int(kind.split(":")[1])
        raw = value.encode("ascii").ljust(2 * n, b"\0")
        if order in ("BADC", "DCBA"):
            raw = b"".join(raw[i:i + 2][::-1] for i in range(0, len(raw), 2))
        return words_of(raw)
    be = struct.pack(STRUCT[kind], value)
    if order == "ABCD":
        out = words_of(be)
    elif order == "CDAB":
        out = list(reversed(words_of(be)))
    elif order == "BADC":
        out = words_of(b"".join(be[i:i + 2][::-1] for i in range(0, len(be), 2)))
    elif order == "DCBA":
        out = words_of(be[::-1])
    else:
        raise SystemExit(f"unknown order {order}")
    if order in ("ABCD", "CDAB"):
        word_order = "big" if order == "ABCD" else "little"
        check = ModbusTcpClient.convert_to_registers(value, PYMODBUS_TYPE[kind], word_order=word_order)
        assert check == out, f"{kind} {order} {value}: struct {out} != pymodbus {check}"
    return out


def table(entries, size):
    regs = [0] * size
    for e in entries:
        words = encode(e["type"], e.get("order", "ABCD"), e["value"])
        regs[e["address"]:e["address"] + len(words)] = words
    return regs


def bits(entries, size):
    out = [False] * size
    for e in entries:
        out[e["address"]] = bool(e["value"])
    return out


def devices(layout):
    size = layout.get("size", 1000)
    hr = table(layout.get("holding_registers", []), size)
    ir = table(layout.get("input_registers", []), size)
    co = bits(layout.get("coils", []), size)
    di = bits(layout.get("discrete_inputs", []), size)
    return [
        SimDevice(
            unit,
            simdata=(
                [SimData(0, values=list(co), datatype=DataType.BITS)],
                [SimData(0, values=list(di), datatype=DataType.BITS)],
                [SimData(0, values=list(hr), datatype=DataType.REGISTERS)],
                [SimData(0, values=list(ir), datatype=DataType.REGISTERS)],
            ),
        )
        for unit in layout["units"]
    ]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layout", required=True)
    sub = parser.add_subparsers(dest="mode", required=True)
    tcp = sub.add_parser("tcp")
    tcp.add_argument("--port", type=int, required=True)
    rtu = sub.add_parser("rtu")
    rtu.add_argument("--device", required=True)
    rtu.add_argument("--baud", type=int, default=19200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.ERROR)

    with open(args.layout) as f:
        layout = json.load(f)
    devs = devices(layout)
    if args.mode == "tcp":
        server = ModbusTcpServer(devs, address=("127.0.0.1", args.port))
        await server.serve_forever(background=True)
        print(f"READY {args.port}", flush=True)
    else:
        server = ModbusSerialServer(devs, port=args.device, baudrate=args.baud)
        await server.serve_forever(background=True)
        print("READY", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
