/**
 * Dev credentials for a local run and for the tests, generated into the data
 * directory (never the repository): the link key, an ES256 key pair and
 * bearer tokens signed with it (dev-tokens.json), NATS users with per-service
 * permissions, and optionally a dev CA with certificates for mTLS.
 */
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomBytes, createPrivateKey } from "node:crypto";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import { claimSubject, consumerNames, streams, type StreamKey } from "../shared/events/subjects.js";
import { natsInboxPrefix } from "../shared/events/nats-connection.js";
import { natsPasswordFile, secretsDir, type TlsFiles } from "../shared/security/index.js";
import { makeOwnersDir } from "../shared/fs/index.js";

/** The dev tokens file: `{"admin": "<token>", "customers": {"<customerId>": "<token>"}}`. */
export interface DevTokens {
  admin: string;
  customers: Record<string, string>;
}

/** The customers that get a dev token. */
export const DEV_CUSTOMERS = ["alice", "bob"] as const;
/** Issuer and audience of dev tokens (the services' defaults for AUTH_JWT_ISSUER / AUTH_JWT_AUDIENCE). */
export const DEV_ISSUER = "orderly-dev";
export const DEV_AUDIENCE = "orderly";

function ensureDir(dir: string): string {
  makeOwnersDir(dir);
  chmodSync(dir, 0o700);
  return dir;
}

function writeSecret(file: string, content: string): void {
  writeFileSync(file, content, { mode: 0o600 });
}

/** Writes `file` with a new secret unless it exists; returns its content. */
function keepOrCreate(file: string, create: () => string): string {
  if (!existsSync(file)) writeSecret(file, create());
  return readFileSync(file, "utf8");
}

/** Signs a dev bearer token with the dev private key. */
export async function mintDevToken(
  dataDir: string,
  claims: { sub: string; roles: string[]; customer_id?: string },
  options: { ttlSeconds?: number; issuer?: string; audience?: string } = {},
): Promise<string> {
  const key = createPrivateKey(readFileSync(join(secretsDir(dataDir), "jwt-private.pem"), "utf8"));
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", typ: "JWT" })
    .setIssuer(options.issuer ?? DEV_ISSUER)
    .setAudience(options.audience ?? DEV_AUDIENCE)
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(`${options.ttlSeconds ?? 7 * 24 * 3600}s`)
    .sign(key);
}

/**
 * Creates (or keeps) the link key and the token key pair under
 * $ORDERLY_DATA_DIR/secrets, and writes fresh tokens for an admin and each
 * dev customer to $ORDERLY_DATA_DIR/dev-tokens.json.
 */
export async function writeDevCredentials(dataDir: string): Promise<DevTokens> {
  const dir = ensureDir(secretsDir(dataDir));
  keepOrCreate(join(dir, "link.key"), () => randomBytes(32).toString("hex"));
  if (!existsSync(join(dir, "jwt-private.pem")) || !existsSync(join(dir, "jwt-public.pem"))) {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    writeSecret(join(dir, "jwt-private.pem"), privateKey.export({ type: "pkcs8", format: "pem" }).toString());
    writeFileSync(join(dir, "jwt-public.pem"), publicKey.export({ type: "spki", format: "pem" }).toString());
  }
  const tokens: DevTokens = {
    admin: await mintDevToken(dataDir, { sub: "admin", roles: ["admin"] }),
    customers: {},
  };
  for (const customer of DEV_CUSTOMERS) {
    tokens.customers[customer] = await mintDevToken(dataDir, { sub: `customer:${customer}`, roles: ["customer"], customer_id: customer });
  }
  writeSecret(join(dataDir, "dev-tokens.json"), `${JSON.stringify(tokens, null, 2)}\n`);
  return tokens;
}

/**
 * The JetStream API a service needs: look up and make (when missing) every stream, update the one it publishes to
 * (`publishesTo`) and no other (an update that lowers a stream's limit deletes its events, as a purge would), and set
 * up, read, pull from, ack and (to rebuild a read model) delete its own durable consumers, named here as the services
 * name them, and no other's.
 */
function jetStreamApi(consumers: readonly (readonly [stream: string, durable: string])[], publishesTo?: StreamKey): string[] {
  return [
    "$JS.API.INFO",
    ...Object.values(streams).flatMap((stream) => [`$JS.API.STREAM.INFO.${stream.name}`, `$JS.API.STREAM.CREATE.${stream.name}`]),
    ...(publishesTo === undefined ? [] : [`$JS.API.STREAM.UPDATE.${streams[publishesTo].name}`]),
    ...consumers.flatMap(([stream, durable]) => [
      `$JS.API.CONSUMER.INFO.${stream}.${durable}`,
      `$JS.API.CONSUMER.CREATE.${stream}.${durable}`,
      `$JS.API.CONSUMER.CREATE.${stream}.${durable}.>`,
      `$JS.API.CONSUMER.DURABLE.CREATE.${stream}.${durable}`,
      `$JS.API.CONSUMER.DELETE.${stream}.${durable}`,
      `$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`,
      `$JS.ACK.${stream}.${durable}.>`,
    ]),
  ];
}

/** The inbox subjects of a user's connection (`natsInboxPrefix`): its requests' answers and its pulls' messages come there, no one else's. */
const inbox = (user: string) => `${natsInboxPrefix(user)}.>`;

/** The NATS users of a local run, and what each may publish and subscribe to; the query's consumers are named after `queryConsumerName` (QUERY_CONSUMER_NAME). */
const natsUsers = (queryConsumerName: string) => ({
  // Services publish their own events (through the outbox relay) and pull from their own consumers.
  // Each claims its consumer's name, as one process of its kind (asked, and answered in the asker's inbox: its own user's).
  inventory: {
    publish: [...streams.inventory.subjects, ...jetStreamApi([[streams.orders.name, consumerNames.inventoryOrderEvents]], "inventory"), claimSubject(consumerNames.inventoryOrderEvents), inbox("inventory")],
    subscribe: [inbox("inventory"), claimSubject(consumerNames.inventoryOrderEvents)],
  },
  order: {
    publish: [...streams.orders.subjects, ...jetStreamApi([[streams.inventory.name, consumerNames.orderReservationOutcomes]], "orders"), claimSubject(consumerNames.orderReservationOutcomes), inbox("order")],
    subscribe: [inbox("order"), claimSubject(consumerNames.orderReservationOutcomes)],
  },
  query: {
    // Its projections, and what `npm run rebuild` reads the streams with as the query service's user; the claim of
    // its consumers' name (asked, and answered in the asker's inbox, which is the query user's: another copy's, or a
    // person's asking with `--inbox-prefix _INBOX_query`). Not `allow_responses`: nats-server 2.9 would then note the
    // reply subject of every JetStream message delivered to it, and delivering 30,000 events took 13 times as long.
    publish: [
      ...jetStreamApi(
        (["orders", "inventory"] as const).flatMap((key) => [
          [streams[key].name, consumerNames.projection(queryConsumerName, key)] as const,
          [streams[key].name, consumerNames.rebuild(queryConsumerName, key)] as const,
        ]),
      ),
      claimSubject(queryConsumerName),
      inbox("query"),
    ],
    subscribe: [inbox("query"), claimSubject(queryConsumerName)],
  },
  // The gateway only listens to events (to invalidate its read cache).
  gateway: { publish: [] as string[], subscribe: ["orderly.>", inbox("gateway")] },
  // For people and tools (nats CLI, tests): everything.
  operator: { publish: [">"], subscribe: [">"] },
});

/** Which process logs in to NATS as which user. */
export type NatsUser = keyof ReturnType<typeof natsUsers>;

/** NATS security for a local run: a server config file and, per process, the environment to log in with. */
export interface NatsSecurity {
  configFile: string;
  envFor(user: NatsUser): Record<string, string>;
  /** A user's name and password (to connect from a test or a tool). */
  credentials(user: NatsUser): { user: string; pass: string };
}

/**
 * Writes a nats-server config with one user per process (passwords in files
 * beside it) whose permissions let a service publish only its own event
 * subjects and use the JetStream API only for the streams and its own durable
 * consumers (it cannot pull from, ack or delete another's), and subscribe only
 * to its own inbox. The query's consumers are those QUERY_CONSUMER_NAME
 * (`queryConsumerName`) names.
 */
export function writeNatsSecurity(dataDir: string, queryConsumerName: string): NatsSecurity {
  const dir = ensureDir(secretsDir(dataDir));
  const quote = (s: string) => JSON.stringify(s);
  const users = Object.entries(natsUsers(queryConsumerName)).map(([user, permissions]) => {
    const password = keepOrCreate(natsPasswordFile(dataDir, user), () => randomBytes(24).toString("hex")).trim();
    const publish = permissions.publish.length === 0 ? `{ deny: [">"] }` : `{ allow: [${permissions.publish.map(quote).join(", ")}] }`;
    return `    { user: ${quote(user)}, password: ${quote(password)}, permissions: { publish: ${publish}, subscribe: { allow: [${permissions.subscribe.map(quote).join(", ")}] } } }`;
  });
  const configFile = join(dir, "nats.conf");
  writeSecret(configFile, `# Written by Orderly's local run: one user per process, each limited to its own subjects.\nauthorization {\n  users: [\n${users.join(",\n")}\n  ]\n}\n`);
  return {
    configFile,
    envFor: (user) => ({ NATS_USER: user, NATS_PASSWORD_FILE: natsPasswordFile(dataDir, user) }),
    credentials: (user) => ({ user, pass: readFileSync(natsPasswordFile(dataDir, user), "utf8").trim() }),
  };
}

/** The processes that get a certificate for mTLS. */
export const TLS_PROCESSES = ["gateway", "order", "inventory", "query"] as const;

function openssl(args: string[]): void {
  try {
    execFileSync("openssl", args, { stdio: "pipe" });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? String(error);
    throw new Error(`openssl ${args[0]} failed (install it: apt-get install -y openssl): ${stderr}`);
  }
}

/**
 * A dev CA and one certificate per process (for localhost and 127.0.0.1,
 * usable as server and as client), made with the openssl CLI under
 * `dir`; a certificate is reused while it exists. Returns each process's files.
 */
export function writeDevCertificates(dir: string, names: readonly string[] = TLS_PROCESSES, caName = "Orderly dev CA"): Record<string, TlsFiles> {
  ensureDir(dir);
  const caKey = join(dir, "ca.key");
  const caFile = join(dir, "ca.crt");
  if (!existsSync(caFile)) {
    openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", caKey, "-out", caFile, "-days", "30", "-subj", `/CN=${caName}`]);
  }
  const extFile = join(dir, "leaf.ext");
  writeFileSync(extFile, "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature\n");
  const files: Record<string, TlsFiles> = {};
  for (const name of names) {
    const keyFile = join(dir, `${name}.key`);
    const certFile = join(dir, `${name}.crt`);
    if (!existsSync(certFile)) {
      const csr = join(dir, `${name}.csr`);
      openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyFile, "-out", csr, "-subj", `/CN=${name}`]);
      openssl(["x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial", "-out", certFile, "-days", "30", "-extfile", extFile]);
    }
    files[name] = { caFile, certFile, keyFile };
  }
  return files;
}

/** The environment that points a process at its certificate files. */
export function tlsEnv(files: TlsFiles): Record<string, string> {
  return { ORDERLY_TLS_CA_FILE: files.caFile, ORDERLY_TLS_CERT_FILE: files.certFile, ORDERLY_TLS_KEY_FILE: files.keyFile };
}
