import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base";
import type { Logger } from "../logging/index.js";

/**
 * Hands spans to the OTLP exporter and logs when export starts failing (at
 * warn, once, with the error) and when it works again (at info, with how
 * many spans of failed batches were lost meanwhile; spans the batch
 * processor drops when its queue is full are not counted). The SDK drops a
 * batch that failed and says so only to OpenTelemetry's diag logger, which
 * no process reads.
 */
export class LoggedSpanExporter implements SpanExporter {
  private lostSpans = 0;

  constructor(
    private readonly exporter: SpanExporter,
    private readonly logger: Logger,
    private readonly url: string,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.exporter.export(spans, (result) => {
      if (result.code === ExportResultCode.FAILED) {
        if (this.lostSpans === 0) this.logger.warn({ err: result.error, url: this.url }, "span export failed: spans are dropped until the collector takes them");
        this.lostSpans += spans.length;
      } else if (this.lostSpans > 0) {
        this.logger.info({ lostSpans: this.lostSpans, url: this.url }, "span export works again");
        this.lostSpans = 0;
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.exporter.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.exporter.forceFlush?.() ?? Promise.resolve();
  }
}
