/**
 * Errors of the HTTP API. Each carries the HTTP status and the OpenAI error fields it is answered with:
 * `{ "error": { "message", "type", "param", "code" } }`.
 */
export class ApiError extends Error {
  static override name = 'ApiError'
  readonly status: number
  readonly type: string
  readonly param: string | null
  readonly code: string | null

  constructor (status: number, message: string, type: string, options: { param?: string | null, code?: string | null } = {}) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.type = type
    this.param = options.param ?? null
    this.code = options.code ?? null
  }

  toJSON (): { error: { message: string, type: string, param: string | null, code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } }
  }
}

/** 400: the request is malformed or a parameter is out of range */
export class InvalidRequestError extends ApiError {
  static override name = 'InvalidRequestError'
  constructor (message: string, param: string | null = null, code: string | null = null) {
    super(400, message, 'invalid_request_error', { param, code })
    this.name = 'InvalidRequestError'
  }
}

/** 404: a model this node does not serve */
export class UnknownModelError extends ApiError {
  static override name = 'UnknownModelError'
  constructor (model: string) {
    super(404, `The model '${model}' does not exist or is not served by this node`, 'invalid_request_error', { param: 'model', code: 'model_not_found' })
    this.name = 'UnknownModelError'
  }
}

/** 503: the part of the node behind an endpoint is not running (no ledger, no model, …) */
export class BackendUnavailableError extends ApiError {
  static override name = 'BackendUnavailableError'
  constructor (message: string) {
    super(503, message, 'service_unavailable', { code: 'backend_unavailable' })
    this.name = 'BackendUnavailableError'
  }
}
