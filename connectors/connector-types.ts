/**
 * The connector types a file may name, each a factory from its settings to a
 * runner (the runtime's part) around a task (the connector's part). One file
 * per connector holds the task; this table is the only place that lists them.
 */
import { Settings, configError, type ConnectorConfig } from './config.ts';
import { PostgresSink, postgresSinkOptions } from './postgres-sink.ts';
import { PostgresSource, postgresSourceOptions } from './postgres-source.ts';
import { SinkRunner } from './sink-runner.ts';
import { SourceRunner } from './source-runner.ts';
import { WebhookSink, webhookSinkOptions } from './webhook-sink.ts';
import type { Worker, WorkerDeps } from './worker.ts';

export type FactoryContext = WorkerDeps;

type Factory = (c: ConnectorConfig, ctx: FactoryContext) => Worker;

function sinkOptions(c: ConnectorConfig, s: Settings, defaults: { batchSize: number; lingerMs: number }) {
  return {
    group: s.string('group', c.name),
    batchSize: s.int('batchSize', defaults.batchSize, 1, 100_000),
    lingerMs: s.int('lingerMs', defaults.lingerMs, 0, 60_000),
    from: s.oneOf('from', ['earliest', 'latest'] as const, 'earliest'),
    lagIntervalMs: s.int('lagIntervalMs', 2000, 100, 600_000),
  };
}

const CONNECTOR_TYPES: Record<string, Factory> = {
  'postgres-sink': (c, ctx) => {
    const s = new Settings(c.name, c.settings);
    const o = sinkOptions(c, s, { batchSize: 20_000, lingerMs: 20 });
    const task = new PostgresSink(postgresSinkOptions(c.name, c.topic, s), ctx.log);
    s.done();
    return new SinkRunner(c, task, o, ctx);
  },
  'postgres-source': (c, ctx) => {
    const s = new Settings(c.name, c.settings);
    const o = {
      pollIntervalMs: s.int('pollIntervalMs', 1000, 10, 3_600_000),
      batchSize: s.int('batchSize', 1000, 1, 100_000),
      partitions: s.int('partitions', 1, 1, 10_000),
      recoveryScanRecords: s.int('recoveryScanRecords', 1000, 1, 1_000_000),
    };
    const task = new PostgresSource(postgresSourceOptions(c.name, s), ctx.log);
    s.done();
    return new SourceRunner(c, task, o, ctx);
  },
  'webhook-sink': (c, ctx) => {
    const s = new Settings(c.name, c.settings);
    const o = sinkOptions(c, s, { batchSize: 100, lingerMs: 50 });
    let opts;
    try {
      opts = webhookSinkOptions(c.name, s);
    } catch (e) {
      throw configError((e as Error).message);
    }
    s.done();
    let runner: SinkRunner | null = null;
    const task = new WebhookSink(opts, ctx.client, () => runner!.status);
    runner = new SinkRunner(c, task, o, ctx);
    return runner;
  },
};

export function createWorker(c: ConnectorConfig, ctx: FactoryContext): Worker {
  const factory = CONNECTOR_TYPES[c.type];
  if (!factory) throw configError(`connector ${c.name}: unknown type ${JSON.stringify(c.type)} (one of ${Object.keys(CONNECTOR_TYPES).join(', ')})`);
  return factory(c, ctx);
}
