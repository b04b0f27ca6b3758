import { Role as RoleEnum } from "../../proto/gen/orderly/auth/v1/access_pb.js";
import { OrderlyError } from "../errors/index.js";

/** A role a principal may hold (the `roles` claim of a token). */
export type Role = "customer" | "admin" | "service";

/** The roles, as the proto's orderly.auth.v1.Role names them. */
export const roleOfEnum: Readonly<Record<number, Role>> = {
  [RoleEnum.CUSTOMER]: "customer",
  [RoleEnum.ADMIN]: "admin",
  [RoleEnum.SERVICE]: "service",
};

const knownRoles: ReadonlySet<string> = new Set(Object.values(roleOfEnum));

/** Who is calling: the subject of a verified token, its customer id (customers) and roles. */
export interface Principal {
  readonly subject: string;
  /** The customer this principal acts as (customers only). */
  readonly customerId: string | undefined;
  readonly roles: readonly Role[];
}

/** The known roles among `values` (unknown ones are dropped, never trusted). */
export function rolesFrom(values: unknown): Role[] {
  return Array.isArray(values) ? values.filter((v): v is Role => typeof v === "string" && knownRoles.has(v)) : [];
}

/** Whether the principal may act on any customer's resources (admins, and services on their own behalf). */
export function actsForAnyCustomer(principal: Principal): boolean {
  return principal.roles.includes("admin") || principal.roles.includes("service");
}

/** Whether the principal may see or change resources of `customerId`. */
export function mayActFor(principal: Principal | undefined, customerId: string): boolean {
  if (principal === undefined) return false;
  return actsForAnyCustomer(principal) || (principal.customerId !== undefined && principal.customerId === customerId);
}

/**
 * Refuses a principal acting for another customer (PERMISSION_DENIED): for
 * requests that name the customer themselves (create an order for, list the
 * orders of). Requests naming one order answer NOT_FOUND instead, so that
 * order ids of other customers are not revealed.
 */
export function requireActFor(principal: Principal | undefined, customerId: string): void {
  if (!mayActFor(principal, customerId)) {
    throw new OrderlyError("NOT_YOUR_CUSTOMER", "the caller may not act for this customer", { metadata: { customerId } });
  }
}
