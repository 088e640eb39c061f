import { existsSync } from 'node:fs'
import { readFile, readdir } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** One static file of the dashboard, held in memory */
export interface DashboardAsset {
  contentType: string
  body: Buffer
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon'
}

/**
 * The directory of the dashboard's static files (`src/dashboard/static`, shipped with the package's
 * `src`): found from the source module (tests) or from its compiled copy in `dist/src/dashboard`.
 */
export function dashboardDir (): string {
  const here = fileURLToPath(new URL('.', import.meta.url))
  for (const dir of [join(here, 'static'), join(here, '..', '..', '..', 'src', 'dashboard', 'static')]) {
    if (existsSync(join(dir, 'index.html'))) return dir
  }
  throw new Error(`the dashboard's static files are missing (looked next to ${here})`)
}

/**
 * Reads the dashboard's files once into memory, by URL path (`/` → index.html, `/app.js`, …): the server
 * answers only these paths, so no request can name another file.
 */
export async function loadDashboard (dir = dashboardDir()): Promise<Map<string, DashboardAsset>> {
  const assets = new Map<string, DashboardAsset>()
  for (const name of await readdir(dir)) {
    const type = TYPES[extname(name)]
    if (type === undefined) continue
    const asset = { contentType: type, body: await readFile(join(dir, name)) }
    assets.set(`/${name}`, asset)
    if (name === 'index.html') assets.set('/', asset)
  }
  return assets
}
