import { headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type PubAck, type Subscription } from "nats";
import { newInbox } from "./nats-connection.js";
import { followConnection } from "./nats-connection.js";

/** One message to publish to a JetStream stream. */
export interface JetStreamMessage {
  subject: string;
  payload: Uint8Array;
  /** Nats-Msg-Id: JetStream drops a second message with the same id inside the stream's duplicate window. */
  msgID: string;
  /** Further headers (e.g. traceparent). */
  headers?: Readonly<Record<string, string>>;
}

/** JetStream did not store the message: it answered with an error, nothing answered in time, or no stream takes the subject. */
export class JetStreamPublishError extends Error {
  override readonly name: string = "JetStreamPublishError";
}

/** The connection to NATS was down when the message was published, or dropped before JetStream answered: it may or may not be stored. */
export class NatsConnectionLost extends JetStreamPublishError {
  override readonly name: string = "NatsConnectionLost";
}

/**
 * The publisher was closed (its relay stopping) before JetStream answered: as with a connection
 * lost, the message may or may not be stored, and those after it are left to publish again.
 */
export class PublisherClosed extends NatsConnectionLost {
  override readonly name = "PublisherClosed";
}

/**
 * The publisher sent nothing: its PubAck subscription was refused, or is being made again. No sign of a stream lost,
 * so the relay asks for no stream setup (which NATS would refuse as well while the user lacks its inbox).
 */
export class NothingSent extends JetStreamPublishError {
  override readonly name = "NothingSent";
}

/**
 * JetStream refused the message because its stream (or the server's store) is full: a state of the
 * stream, not of the message, so the messages after it are refused too until there is room.
 */
export class StreamFull extends JetStreamPublishError {
  override readonly name = "StreamFull";

  /**
   * What is full: the stream's own limit ("stream": STREAM_MAX_EVENTS), or the storage JetStream may
   * use ("store": the server's max_file_store, the account's limit), which raising the stream's does not help.
   */
  constructor(
    message: string,
    readonly limit: "stream" | "store",
  ) {
    super(message);
  }
}

/**
 * JetStream's error codes for a stream or store that cannot take more: the
 * stream's store refusing it (10077: "maximum bytes exceeded", "maximum
 * messages exceeded" with DiscardNew), and the server's or the account's
 * resources used up (10023 insufficient resources, 10047 and 10028 storage and
 * memory resources, 10002 account resource limits).
 */
const FULL_CODES = new Set([10077, 10023, 10047, 10028, 10002]);
/** A 10077 refusal that names the stream's own limits (any other store failure under that code is the storage's). */
const STREAM_LIMIT = /maximum (messages|bytes)/i;

interface Waiter {
  deadline: number;
  resolve: (ack: PubAck) => void;
  reject: (error: Error) => void;
}

const decoder = new TextDecoder();
const CLOSED = "the publisher is closed";

/**
 * How long after the server refused the PubAck subscription a publish subscribes again (ms), doubling while it is
 * refused up to RESUBSCRIBE_MAX_MS (each refusal is a line of the server's log); a reconnect subscribes at once.
 */
const RESUBSCRIBE_MS = 2000;
const RESUBSCRIBE_MAX_MS = 60_000;

/**
 * Publishes to JetStream the way `js.publish` does — a core NATS publish
 * with a Nats-Msg-Id header and a reply subject, answered by a PubAck — but
 * with every reply arriving on one wildcard subscription and one sweep timer
 * for the deadlines. Hand-written because nats.js's request path makes a
 * timer and an Error with a captured stack for every publish, even a
 * successful one (RequestOne.cancel): side by side on this machine, 256 in
 * flight, it published ~2.4x the messages per second at a third of the CPU
 * per message. Many may be in flight on the one connection, so they reach
 * the server in the order they were published.
 *
 * It follows the connection's state: when the connection drops, whatever
 * is waiting fails at once (a PubAck the server sent on the lost connection
 * never arrives, and nats.js's buffered publishes were never acked after a
 * reconnect either: measured, they waited out their deadline), and until it
 * is back each publish is refused at once. `onReconnect` tells a caller
 * when publishing can work again, so it need not wait out a back-off.
 */
export class JetStreamPublisher {
  private inbox = "";
  private subscription: Subscription | undefined;
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 0;
  private sweeper: NodeJS.Timeout | undefined;
  /** Why nothing more can be published: closed. */
  private unusable: string | undefined;
  /**
   * The server refused the PubAck subscription (its NATS user not allowed the inbox): why, when, and how long after it
   * a publish subscribes again. Publishes are refused until then, and that publish too (it only subscribes: a message
   * sent with it would be stored unacked, again after each wait, once the duplicate window has passed); then, the
   * subscription not refused again, they go (the permission may have been granted by a reload of the server's
   * configuration, which keeps the connection). A reconnect subscribes again at once.
   */
  private refused: { reason: string; at: number; againMs: number } | undefined;
  /** The wait after the next refusal: RESUBSCRIBE_MS, doubling per refusal, until a PubAck comes. */
  private resubscribeMs = RESUBSCRIBE_MS;
  /** A subscription made again after a refusal, until the server has answered it (a refusal comes before a flush's PONG). */
  private probing = false;
  /** False from the connection's disconnect to its reconnect. */
  private connected: boolean;
  /** Since when the connection is down (the publisher's clock), while it is; and how long it was down before. */
  private downSince: number | undefined;
  private downBefore = 0;
  private readonly following: { stop(): void };
  private readonly reconnectListeners = new Set<() => void>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs = 5000,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.subscribe();
    // A publisher made while the connection is down would not hear of the disconnect: the state it starts
    // from is nats.js's own (not public API; assumed up when it is not there).
    this.connected = (nc as { protocol?: { connected?: unknown } }).protocol?.connected !== false;
    if (!this.connected) this.downSince = this.clock();
    const following = followConnection(nc, { down: () => this.disconnected(), up: () => this.reconnected() });
    // Should following the connection fail, publishes are left to their deadlines, as without it.
    following.done.catch(() => {
      this.connected = true;
      this.outageEnded();
    });
    this.following = following;
  }

  /** Whether the connection is up (as of the last state change nats.js reported). */
  get isConnected(): boolean {
    return this.connected;
  }

  /** How long the connection has been down since the publisher was made (ms), the outage going on included. */
  get downMs(): number {
    return this.downBefore + (this.downSince === undefined ? 0 : this.clock() - this.downSince);
  }

  /** Subscribes to a new inbox for the PubAcks (each refused subscription nats.js closes). */
  private subscribe(): void {
    this.refused = undefined;
    this.subscription?.unsubscribe();
    const inbox = `${newInbox(this.nc)}.`;
    this.inbox = inbox;
    // nats.js calls this from its protocol reader: nothing may throw out of it.
    this.subscription = this.nc.subscribe(`${inbox}*`, {
      callback: (error, msg) => {
        if (error) {
          // The refusal of a subscription since replaced is that one's alone.
          if (inbox !== this.inbox || this.unusable !== undefined) return;
          this.refused = { reason: `the PubAck subscription failed: ${error.message}`, at: this.clock(), againMs: this.resubscribeMs };
          this.resubscribeMs = Math.min(RESUBSCRIBE_MAX_MS, this.resubscribeMs * 2);
          this.fail(() => true, this.refused.reason);
        } else {
          this.answer(msg);
        }
      },
    });
  }

  /** Subscribes again after a refusal; publishes wait for the server's answer to it (resolved by a flush's round trip). */
  private resubscribe(): void {
    this.subscribe();
    this.probing = true;
    void this.nc.flush().then(
      () => (this.probing = false),
      () => {
        this.probing = false;
        // Not answered (the connection dropped): unconfirmed, so the reconnect probes again before anything is sent.
        this.refused ??= { reason: "the PubAck subscription made again was not confirmed", at: this.clock(), againMs: 0 };
      },
    );
  }

  /** Calls `listener` each time the connection comes back after a drop; returns how to stop. */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /**
   * Publishes one message; resolves with its PubAck, rejects with a
   * JetStreamPublishError (or the connection's error). Without an answer it
   * fails after `timeoutMs`, give or take the sweep's period (a quarter of
   * it, at most a second).
   */
  publish(message: JetStreamMessage): Promise<PubAck> {
    return new Promise<PubAck>((resolve, reject) => {
      if (this.unusable !== undefined) return reject(new JetStreamPublishError(this.unusable));
      if (!this.connected) return reject(new NatsConnectionLost("not connected to NATS"));
      if (this.refused !== undefined && this.clock() - this.refused.at >= this.refused.againMs) this.resubscribe();
      if (this.probing) return reject(new NothingSent("the PubAck subscription, refused before, is being made again"));
      if (this.refused !== undefined) return reject(new NothingSent(this.refused.reason));
      const id = this.nextId++;
      const h: MsgHdrs = natsHeaders();
      if (message.headers) for (const [key, value] of Object.entries(message.headers)) h.set(key, value);
      h.set("Nats-Msg-Id", message.msgID);
      this.waiting.set(id, { deadline: this.clock() + this.timeoutMs, resolve, reject });
      try {
        this.nc.publish(message.subject, message.payload, { reply: `${this.inbox}${id}`, headers: h });
      } catch (error) {
        this.waiting.delete(id);
        reject(error as Error);
        return;
      }
      if (this.sweeper === undefined) {
        this.sweeper = setInterval(() => this.expire(), Math.max(10, Math.min(1000, this.timeoutMs / 4)));
        this.sweeper.unref();
      }
    });
  }

  /** Stops listening for PubAcks; whatever is still waiting fails. */
  close(): void {
    if (this.unusable === CLOSED) return;
    this.unusable = CLOSED;
    this.following.stop();
    this.reconnectListeners.clear();
    this.subscription?.unsubscribe();
    this.fail(() => true, "the publisher was closed before JetStream answered", PublisherClosed);
  }

  private disconnected(): void {
    this.connected = false;
    this.downSince ??= this.clock();
    this.fail(() => true, "the NATS connection was lost before JetStream answered", NatsConnectionLost);
  }

  private outageEnded(): void {
    if (this.downSince !== undefined) this.downBefore += this.clock() - this.downSince;
    this.downSince = undefined;
  }

  private reconnected(): void {
    this.connected = true;
    this.outageEnded();
    // The server's configuration, and so the user's permissions, may have changed meanwhile.
    if (this.refused !== undefined) this.resubscribe();
    for (const listener of this.reconnectListeners) {
      try {
        listener();
      } catch {
        // A listener's failure is its own; the others still hear of it.
      }
    }
  }

  private answer(msg: Msg): void {
    const id = Number(msg.subject?.slice(this.inbox.length));
    const waiter = this.waiting.get(id);
    if (waiter === undefined) return; // answered after its deadline
    this.waiting.delete(id);
    this.resubscribeMs = RESUBSCRIBE_MS;
    // A status instead of a PubAck: 503 when no stream takes the subject (or JetStream is not there).
    if (msg.headers?.hasError) return waiter.reject(new JetStreamPublishError(`JetStream answered ${msg.headers.code} ${msg.headers.description}`));
    let ack: PubAck & { error?: { code?: number; err_code?: number; description?: string } };
    try {
      ack = JSON.parse(decoder.decode(msg.data)) as typeof ack;
    } catch {
      return waiter.reject(new JetStreamPublishError("JetStream answered with something that is not a PubAck"));
    }
    if (ack.error) {
      const { code, err_code: errCode, description = "" } = ack.error;
      const refusal = `JetStream refused the message: ${code ?? ""} ${errCode ?? ""} ${description}`;
      if (errCode === undefined || !FULL_CODES.has(errCode)) return waiter.reject(new JetStreamPublishError(refusal));
      return waiter.reject(new StreamFull(refusal, errCode === 10077 && STREAM_LIMIT.test(description) ? "stream" : "store"));
    }
    if (typeof ack.stream !== "string" || ack.stream === "") return waiter.reject(new JetStreamPublishError("JetStream answered with a PubAck naming no stream"));
    waiter.resolve({ stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate === true, domain: ack.domain });
  }

  private expire(): void {
    const now = this.clock();
    this.fail((w) => w.deadline <= now, `no PubAck within ${this.timeoutMs} ms`);
  }

  private fail(which: (w: Waiter) => boolean, reason: string, kind: typeof JetStreamPublishError = JetStreamPublishError): void {
    let error: JetStreamPublishError | undefined;
    for (const [id, waiter] of this.waiting) {
      if (!which(waiter)) continue;
      this.waiting.delete(id);
      waiter.reject((error ??= new kind(reason)));
    }
    if (this.waiting.size === 0 && this.sweeper !== undefined) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }
}
