import { expect, test } from "vitest";
import { listenable } from "./bind-host.js";

test("a bind host is one a server can listen on: an address of this machine, or a name that resolves to one", async () => {
  for (const host of ["127.0.0.1", "0.0.0.0", "localhost"]) expect(await listenable({ host })).toEqual({ host });
  await expect(listenable({ host: "not-a-host.invalid" })).rejects.toThrow(/^ORDERLY_BIND_HOST cannot be listened on: not-a-host.invalid does not resolve \(/);
  await expect(listenable({ host: "192.0.2.1" })).rejects.toThrow("ORDERLY_BIND_HOST cannot be listened on: 192.0.2.1 is not an address of this machine (EADDRNOTAVAIL)");
});
