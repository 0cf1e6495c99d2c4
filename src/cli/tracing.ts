/**
 * Tracing for `aftercall worker` and `aftercall serve`: when OTEL_EXPORTER_OTLP_ENDPOINT (or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, the OpenTelemetry Node SDK starts with OTLP
 * export of traces and follows the standard OTEL_* variables (OTEL_SERVICE_NAME,
 * OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER, OTEL_BSP_*,
 * OTEL_RESOURCE_ATTRIBUTES, ...). Metrics stay on /metrics (Prometheus) and logs on standard
 * output unless OTEL_METRICS_EXPORTER / OTEL_LOGS_EXPORTER say otherwise.
 *
 * The SDK is loaded here only, with import(), and only when tracing is on: the library
 * (`aftercall`, `aftercall/producer`) depends on @opentelemetry/api alone. The SDK packages are
 * optional dependencies: a deployment that omits them gets a clear error when it asks for
 * tracing.
 */
export interface Tracing {
  enabled: boolean;
  /** Flushes what is buffered and stops the SDK. */
  shutdown(): Promise<void>;
}

export async function startTracing(env: NodeJS.ProcessEnv, serviceName: string): Promise<Tracing> {
  if (!env.OTEL_EXPORTER_OTLP_ENDPOINT && !env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
    return { enabled: false, shutdown: async () => undefined };
  }
  if (env.OTEL_SDK_DISABLED === 'true') return { enabled: false, shutdown: async () => undefined };
  // The SDK reads its configuration from process.env.
  for (const [name, value] of Object.entries(env)) if (name.startsWith('OTEL_')) process.env[name] = value;
  process.env.OTEL_METRICS_EXPORTER ??= 'none';
  process.env.OTEL_LOGS_EXPORTER ??= 'none';
  let sdkModule: typeof import('@opentelemetry/sdk-node');
  try {
    sdkModule = await import('@opentelemetry/sdk-node');
  } catch (error) {
    throw new Error(
      `OTEL_EXPORTER_OTLP_ENDPOINT is set, but the OpenTelemetry SDK is not installed (optional dependencies @opentelemetry/sdk-node, @opentelemetry/exporter-trace-otlp-http): ${(error as Error).message}`,
    );
  }
  const sdk = new sdkModule.NodeSDK({
    ...(!env.OTEL_SERVICE_NAME && { serviceName }),
    instrumentations: [],
  });
  sdk.start();
  return { enabled: true, shutdown: () => sdk.shutdown() };
}
