// Loaded into the hub by bench/streams.ts (NODE_OPTIONS=--require) when
// STREAMS_HUB_CPU_PROF=DIR is set: each SIGUSR2 starts a V8 CPU profile of
// the hub's main thread, the next one writes it to DIR/hub-<n>.cpuprofile,
// so the profile covers a bench row's timed part only (the bench sends the
// signals and renames the file after its row). CommonJS: --require runs it
// before the hub's own modules load.
'use strict';
const dir = process.env.STREAMS_HUB_CPU_PROF;
if (dir && process.argv.includes('serve')) {
  const { Session } = require('node:inspector');
  const fs = require('node:fs');
  const path = require('node:path');
  const session = new Session();
  session.connect();
  let running = false;
  let n = 0;
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      session.post('Profiler.enable', () => session.post('Profiler.start'));
      return;
    }
    running = false;
    session.post('Profiler.stop', (err, res) => {
      if (err) return;
      const file = path.join(dir, `hub-${n++}.cpuprofile`);
      fs.writeFileSync(`${file}.tmp`, JSON.stringify(res.profile));
      fs.renameSync(`${file}.tmp`, file);
    });
  });
}
