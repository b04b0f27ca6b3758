import { readFileSync } from "node:fs";

/** The ports the kernel gives outgoing connections as their own end (Linux: net.ipv4.ip_local_port_range). */
export interface OutgoingPortRange {
  readonly low: number;
  readonly high: number;
  /** Whether a port of the range is reserved (kept out of it). */
  reserved(port: number): boolean;
}

/** Linux's range of ports for outgoing connections, with its reserved ports; undefined elsewhere. */
export function outgoingPortRange(): OutgoingPortRange | undefined {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    const reserved = readFileSync("/proc/sys/net/ipv4/ip_local_reserved_ports", "utf8")
      .trim()
      .split(",")
      .filter((part) => part !== "")
      .map((part): [number, number] => {
        const [from, to] = part.split("-").map(Number);
        return [from!, to ?? from!];
      });
    if (low === undefined || high === undefined || !(low <= high)) return undefined;
    return { low, high, reserved: (port) => reserved.some(([from, to]) => from <= port && port <= to) };
  } catch {
    return undefined;
  }
}
