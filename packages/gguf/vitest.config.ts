// Runs this package's test/**/*.spec.ts on its own (`pnpm test` here, or `vitest run` in this directory);
// the settings are shared with the root run: ../../vitest.shared.ts
import { packageConfig } from '../../vitest.shared.ts'

export default packageConfig(import.meta.url)
