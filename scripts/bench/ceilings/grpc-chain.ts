/**
 * Ceiling 2: a bare HTTP → gRPC → gRPC echo chain with @grpc/grpc-js, the
 * same shape as gateway → order → inventory with none of the work: one
 * process per hop, raw Buffer messages of an Orderly order's size, a
 * deadline on each call. The HTTP front gets the same request bytes as
 * Orderly's gateway, Authorization header included, and ignores it (no
 * authentication, no principal on the hops). The role comes from the environment:
 *
 *   CHAIN_ROLE=leaf                          answers every call with a fixed ~500-byte message
 *   CHAIN_ROLE=middle CHAIN_NEXT=host:port   forwards each call to the leaf and returns its answer
 *   CHAIN_ROLE=http   CHAIN_NEXT=host:port   HTTP server: parses the JSON body, calls the middle, answers JSON
 *
 * Each prints {"msg":"listening","port"} when ready.
 */
import * as grpc from "@grpc/grpc-js";
import { createServer } from "node:http";

const role = process.env.CHAIN_ROLE ?? "";
const next = process.env.CHAIN_NEXT ?? "";
const METHOD = "/bench.v1.Echo/Call";
const REQUEST_BYTES = 400;
const identity = (b: Buffer) => b;
const definition: grpc.ServiceDefinition = {
  call: {
    path: METHOD,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};
const leafAnswer = Buffer.alloc(500, "o");

function listening(port: number): void {
  console.log(JSON.stringify({ msg: "listening", port }));
}

function callNext(client: grpc.Client, request: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest<Buffer, Buffer>(METHOD, identity, identity, request, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (error, response) =>
      error ? reject(error) : resolve(response!),
    );
  });
}

async function main(): Promise<() => Promise<void>> {
  if (role === "leaf" || role === "middle") {
    const client = role === "middle" ? new grpc.Client(next, grpc.credentials.createInsecure()) : undefined;
    const server = new grpc.Server();
    server.addService(definition, {
      call: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        if (!client) return callback(null, leafAnswer);
        callNext(client, call.request).then(
          (response) => callback(null, response),
          (error: grpc.ServiceError) => callback(error),
        );
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    listening(port);
    return async () => {
      server.forceShutdown();
      client?.close();
    };
  }
  if (role === "http") {
    const client = new grpc.Client(next, grpc.credentials.createInsecure());
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        let body: unknown;
        try {
          body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : {};
        } catch {
          res.writeHead(400).end();
          return;
        }
        const request = Buffer.alloc(REQUEST_BYTES, " ");
        request.write(JSON.stringify(body).slice(0, REQUEST_BYTES));
        callNext(client, request).then(
          (response) => {
            const payload = JSON.stringify({ order: response.toString("latin1") });
            res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(payload) });
            res.end(payload);
          },
          () => res.writeHead(503).end(),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    listening(typeof address === "object" && address ? address.port : 0);
    return async () => {
      server.closeAllConnections();
      server.close();
      client.close();
    };
  }
  throw new Error(`CHAIN_ROLE must be leaf, middle or http, got "${role}"`);
}

main().then(
  (close) => {
    const stop = () => void close().finally(() => process.exit(0));
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  },
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
