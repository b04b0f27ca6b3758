import { getOption, hasOption, type DescMethod } from "@bufbuild/protobuf";
import { errors } from "../../proto/gen/orderly/errors/v1/errors_pb.js";
import { declaredReasons, isReason, type Reason } from "./reasons.js";

/** The reasons an RPC answers with only where its proto declares them (`declaredReasons`). */
export const DECLARED_ONLY: ReadonlySet<Reason> = new Set(Object.keys(declaredReasons) as Reason[]);

const declared = new WeakMap<DescMethod, ReadonlySet<Reason>>();

/** The reasons an RPC's proto declares (none without the option). A name that is no reason is a mistake in the proto: it throws. */
export function declaredReasonsOf(method: DescMethod): ReadonlySet<Reason> {
  let named = declared.get(method);
  if (named === undefined) {
    const listed = hasOption(method, errors) ? getOption(method, errors).reasons : [];
    const unknown = listed.filter((name) => !isReason(name) || !DECLARED_ONLY.has(name));
    if (unknown.length > 0) throw new Error(`${method.parent.typeName}/${method.name} declares ${unknown.join(", ")}: not reasons an RPC declares`);
    named = new Set(listed as Reason[]);
    declared.set(method, named);
  }
  return named;
}

/** Whether an RPC may answer with a reason: one any call can meet, or one its proto declares. */
export function mayAnswer(method: DescMethod, reason: Reason): boolean {
  return !DECLARED_ONLY.has(reason) || declaredReasonsOf(method).has(reason);
}
