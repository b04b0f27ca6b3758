#!/usr/bin/python3
"""A Python client of orderly.inventory.v1.InventoryService, generated from proto/.

Used by python-client.test.ts to prove that a client in another language, built
only from the .proto files, can talk to the inventory service. It:

1. restocks a SKU (creating it) with Restock,
2. reads it back with GetItem,
3. calls GetItem for an unknown SKU and for an invalid SKU, and decodes the
   google.rpc.Status each error carries in the `grpc-status-details-bin` trailer,
4. calls GetItem without a token, and Restock with a customer's token,
5. reads the reasons GetItem declares in its proto (option orderly.errors.v1.errors)
   from the generated descriptors,

Calls carry `authorization: Bearer <token>` metadata: the admin's token, unless
said otherwise.

then prints one JSON object on stdout:

    {"restocked": {...Item}, "item": {...Item},
     "unknownSku": {"code": "NOT_FOUND", "reason": "ITEM_NOT_FOUND", ...},
     "invalidSku": {"code": "INVALID_ARGUMENT", "reason": "VALIDATION_FAILED", ...},
     "anonymous": {"code": "UNAUTHENTICATED", ...}, "customerRestock": {"code": "PERMISSION_DENIED", ...},
     "getItemDeclares": ["ITEM_NOT_FOUND"]}

Items are proto3 JSON (json_format.MessageToDict, camelCase names, int64 as
strings). Any unexpected outcome is written to stderr with exit status 1.

Usage:
    inventory_client.py --gen-dir DIR --address HOST:PORT --sku SKU --quantity N
                        --admin-token TOKEN --customer-token TOKEN

DIR holds the modules protoc generated with --python_out and --grpc_python_out.
"""

import argparse
import json
import sys

# How long each call may take, in seconds.
CALL_TIMEOUT_SECONDS = 10

# The gRPC trailer carrying the binary google.rpc.Status of an error.
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def parse_args():
    """Reads the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gen-dir", required=True, help="directory of the generated Python modules")
    parser.add_argument("--address", required=True, help="host:port of the inventory gRPC service")
    parser.add_argument("--sku", required=True, help="SKU to restock and read")
    parser.add_argument("--quantity", type=int, default=7, help="units to restock")
    parser.add_argument("--admin-token", required=True, help="bearer token of an admin")
    parser.add_argument("--customer-token", required=True, help="bearer token of a customer")
    return parser.parse_args()


def main():
    """Runs the calls and prints their outcome as JSON; returns the exit status."""
    args = parse_args()

    # The generated modules import each other by their proto package path
    # (orderly.inventory.v1, google.rpc), so their root goes on sys.path.
    # `google` is a namespace package, so the generated google/rpc and
    # google/api modules sit beside the installed google.protobuf runtime.
    sys.path.insert(0, args.gen_dir)
    import grpc
    from google.protobuf import json_format
    from google.rpc import error_details_pb2, status_pb2
    from orderly.errors.v1 import errors_pb2
    from orderly.inventory.v1 import inventory_pb2, inventory_pb2_grpc

    def item_to_dict(item):
        """The item as proto3 JSON, including fields at their default (reserved: 0)."""
        try:  # protobuf >= 5.26
            return json_format.MessageToDict(item, always_print_fields_with_no_presence=True)
        except TypeError:  # protobuf < 5.26 (Debian bookworm ships 4.21)
            return json_format.MessageToDict(item, including_default_value_fields=True)

    def decode_error(error):
        """The code name and the google.rpc.Status details of a failed call."""
        decoded = {"code": error.code().name, "message": error.details()}
        # Binary trailers (keys ending in -bin) arrive as bytes, already base64-decoded.
        status_bytes = next(
            (value for key, value in (error.trailing_metadata() or ()) if key == STATUS_DETAILS_KEY),
            None,
        )
        if status_bytes is None:
            raise RuntimeError(f"{error.code().name} without a {STATUS_DETAILS_KEY} trailer: {error.details()}")
        status = status_pb2.Status.FromString(status_bytes)
        decoded["statusCode"] = status.code
        for detail in status.details:  # each is a google.protobuf.Any
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):  # Unpack returns False when the Any holds another type
                decoded["reason"] = info.reason
                decoded["domain"] = info.domain
                decoded["metadata"] = dict(info.metadata)
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                decoded["fieldViolations"] = [
                    {"field": v.field, "description": v.description} for v in bad_request.field_violations
                ]
        if "reason" not in decoded:
            raise RuntimeError(f"{error.code().name} whose google.rpc.Status has no ErrorInfo: {status}")
        return decoded

    def bearer(token):
        return (("authorization", f"Bearer {token}"),)

    admin = bearer(args.admin_token)

    def expect_error(call, request, metadata=admin):
        """Makes a call that must fail, and returns its decoded error."""
        try:
            response = call(request, timeout=CALL_TIMEOUT_SECONDS, metadata=metadata)
        except grpc.RpcError as error:
            return decode_error(error)
        raise RuntimeError(f"expected an error, got {json_format.MessageToJson(response)}")

    with grpc.insecure_channel(args.address) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        try:
            restocked = stub.Restock(
                inventory_pb2.RestockRequest(
                    sku=args.sku,
                    quantity=args.quantity,
                    name=f"Python widget {args.sku}",
                    unit_price_minor=1250,
                    currency_code="EUR",
                    request_id=f"python-client-{args.sku}",
                ),
                timeout=CALL_TIMEOUT_SECONDS,
                metadata=admin,
                wait_for_ready=True,  # the first call waits for the connection
            ).item
            item = stub.GetItem(inventory_pb2.GetItemRequest(sku=args.sku), timeout=CALL_TIMEOUT_SECONDS, metadata=admin).item
            unknown = expect_error(stub.GetItem, inventory_pb2.GetItemRequest(sku=f"{args.sku}-unknown"))
            invalid = expect_error(stub.GetItem, inventory_pb2.GetItemRequest(sku="bad sku"))
            anonymous = expect_error(stub.GetItem, inventory_pb2.GetItemRequest(sku=args.sku), metadata=())
            customer_restock = expect_error(
                stub.Restock,
                inventory_pb2.RestockRequest(sku=args.sku, quantity=1),
                metadata=bearer(args.customer_token),
            )
        except grpc.RpcError as error:
            print(f"unexpected gRPC error {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
        except RuntimeError as error:
            print(f"unexpected outcome: {error}", file=sys.stderr)
            return 1

    output = {
        "restocked": item_to_dict(restocked),
        "item": item_to_dict(item),
        "unknownSku": unknown,
        "invalidSku": invalid,
        "anonymous": anonymous,
        "customerRestock": customer_restock,
        "getItemDeclares": list(
            inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"]
            .methods_by_name["GetItem"]
            .GetOptions()
            .Extensions[errors_pb2.errors]
            .reasons
        ),
    }
    print(json.dumps(output, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
