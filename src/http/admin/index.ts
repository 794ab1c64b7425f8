import { adminClientRoutes } from './clients.js';
import { adminImportRoute } from './import.js';
import { adminOperationRoutes } from './operations.js';
import { adminUserRoutes } from './users.js';

/** Every /admin route (admin API keys only; see `assertAdmin` in http/app.ts). */
export const adminRoutes = [...adminUserRoutes, ...adminOperationRoutes, ...adminClientRoutes, adminImportRoute];
