import type { OAuthClient } from '../../model.js';

/** A registered client as an operator sees it (CLI `--json`, admin API): never its secret or hash. */
export function clientView(client: OAuthClient): Record<string, unknown> {
  return {
    ...client,
    type: client.authMethod === 'none' ? 'public' : 'confidential',
    createdAt: client.createdAt.toISOString(),
    updatedAt: client.updatedAt.toISOString(),
    disabledAt: client.disabledAt?.toISOString() ?? null,
  };
}
