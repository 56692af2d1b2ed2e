/** Entry point of the ingress service: `node dist/ingress/main.js` (or `tsx ingress/main.ts`). */
import { readConfigOrExit, runService } from '../core/service.js';
import { loadIngressConfig } from './config.js';
import { startIngress } from './server.js';

await runService('ingress', readConfigOrExit(loadIngressConfig), startIngress);
