export { NoRouteError } from '@neuroshard/pipeline'
