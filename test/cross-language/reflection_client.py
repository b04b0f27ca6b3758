#!/usr/bin/python3
"""A generic Python gRPC client that knows a server only through its reflection service.

Used by python-client.test.ts to prove that what a server reflects is a set of
valid descriptor files, as strict clients (grpcurl, grpc_cli, Python's own
descriptor pool) need them. For each reflection endpoint (v1 and v1alpha) it:

1. lists the services,
2. asks for the file declaring each one (with its dependencies),
3. builds every file into a fresh google.protobuf DescriptorPool, which
   refuses a file that is not valid,
4. looks each service up in the pool,

then prints one JSON object on stdout: per endpoint, per service, the names of
its methods:

    {"grpc.reflection.v1.ServerReflection": {"orderly.inventory.v1.InventoryService": ["GetItem", ...], ...},
     "grpc.reflection.v1alpha.ServerReflection": {...}}

Any unexpected outcome is written to stderr with exit status 1.

Usage:
    reflection_client.py --gen-dir DIR --address HOST:PORT

DIR holds grpc/reflection/v1/reflection_pb2.py, generated with --python_out
(v1alpha's messages are the same on the wire).
"""

import argparse
import importlib.util
import json
import os
import sys

CALL_TIMEOUT_SECONDS = 10

ENDPOINTS = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]


def parse_args():
    """Reads the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gen-dir", required=True, help="directory of the generated reflection module")
    parser.add_argument("--address", required=True, help="host:port of a gRPC server")
    return parser.parse_args()


def describe(channel, endpoint, reflection_pb2, descriptor_pb2, descriptor_pool):
    """The services one reflection endpoint lists, each with its methods, built from its files alone."""
    info = channel.stream_stream(
        f"/{endpoint}/ServerReflectionInfo",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )

    def ask(**request):
        [response] = list(info(iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=CALL_TIMEOUT_SECONDS))
        if response.HasField("error_response"):
            raise RuntimeError(f"{endpoint}: {request}: {response.error_response.error_message}")
        return response

    names = [service.name for service in ask(list_services="").list_services_response.service]
    files = {}
    for name in names:
        for raw in ask(file_containing_symbol=name).file_descriptor_response.file_descriptor_proto:
            file = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[file.name] = file

    # A file goes into the pool after its dependencies; the pool refuses one that is not valid.
    pool = descriptor_pool.DescriptorPool()
    added = set()
    while len(added) < len(files):
        ready = [f for f in files.values() if f.name not in added and all(d in added for d in f.dependency)]
        if not ready:
            raise RuntimeError(f"{endpoint}: files whose dependencies were not served: {sorted(set(files) - added)}")
        for file in ready:
            pool.Add(file)
            added.add(file.name)
    return {name: [method.name for method in pool.FindServiceByName(name).methods] for name in names}


def main():
    """Describes the server through each reflection endpoint and prints the result as JSON; returns the exit status."""
    args = parse_args()
    import grpc
    from google.protobuf import descriptor_pb2, descriptor_pool

    # Loaded from its file: its package path, grpc.reflection, would resolve inside the grpc library.
    spec = importlib.util.spec_from_file_location("reflection_pb2", os.path.join(args.gen_dir, "grpc/reflection/v1/reflection_pb2.py"))
    reflection_pb2 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reflection_pb2)

    try:
        with grpc.insecure_channel(args.address) as channel:
            described = {e: describe(channel, e, reflection_pb2, descriptor_pb2, descriptor_pool) for e in ENDPOINTS}
    except Exception as error:  # pylint: disable=broad-except
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(described))
    return 0


if __name__ == "__main__":
    sys.exit(main())
