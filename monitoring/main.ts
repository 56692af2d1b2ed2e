/** Entry point of the monitoring service: `node dist/monitoring/main.js` (or `tsx monitoring/main.ts`). */
import { readConfigOrExit, runService } from '../core/service.js';
import { loadMonitoringConfig } from './config.js';
import { startMonitoring } from './server.js';

await runService('monitoring', readConfigOrExit(loadMonitoringConfig), startMonitoring);
