// Errors raised while setting litlora up (scripts/*.mjs run before dist/ exists, so they cannot use
// ts/errors.ts's LitloraError). They carry the same stable codes (members of ts/errors.ts's ErrorCode), and
// the CLI turns them into LitloraErrors (ts/cli/build.ts, ts/cli/doctor.ts).
export class SetupError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'LitloraError';
    this.code = code;
  }
}

/** One error as setup prints it: `litlora setup: error [CODE]: message`, like the CLI prints a LitloraError. */
export function formatSetupError(e) {
  const code = typeof e?.code === 'string' && e.code.startsWith('ERR_') ? e.code : null;
  return code ? `litlora setup: error [${code}]: ${e.message}` : `litlora setup: ${e?.message ?? String(e)}`;
}
