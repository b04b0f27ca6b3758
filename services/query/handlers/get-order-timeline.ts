import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { GetOrderTimelineRequest, GetOrderTimelineResponseSchema } from "../../../proto/gen/orderly/query/v1/query_pb.js";
import type { CallContext } from "../../../shared/grpc/index.js";
import { readOrder, type ViewReadDeps } from "./get-order.js";

/** GetOrderTimeline: the statuses an order went through, oldest first. */
export function getOrderTimeline(deps: ViewReadDeps) {
  return async (request: GetOrderTimelineRequest, context: CallContext): Promise<MessageInitShape<typeof GetOrderTimelineResponseSchema>> => {
    await readOrder(deps, request.id, request.minVersion, context);
    return {
      changes: deps.store.timeline(request.id).map((row) => ({
        status: row.status,
        version: BigInt(row.version),
        changeTime: timestampFromMs(row.change_time),
      })),
    };
  };
}
