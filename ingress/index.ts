export { loadIngressConfig, type IngressConfig } from './config.js';
export { startIngress, type Ingress } from './server.js';
export type { ImportAccepted } from './import-route.js';
