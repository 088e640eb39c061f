import { InvalidParametersError } from '@neuroshard/interface'
import { TypedEventEmitter } from 'main-event'
import type { LossPoint, TrainingProgress } from './backend.js'

/** Points kept per curve before older ones are thinned @default 1000 */
export const DEFAULT_MAX_CURVE_POINTS = 1_000

/** Finished rounds kept @default 200 */
export const DEFAULT_MAX_ROUNDS = 200

export interface TrainingRecorderInit {
  /** Inner steps per DiLoCo round (H), when known */
  innerSteps?: number
  /** Points kept per curve; past it every other older point is dropped (memory stays bounded) @default 1000 */
  maxPoints?: number
  now?(): number
}

/** What `followDiLoCo` needs of a `@neuroshard/diloco` service: its `diloco:round` event (structural) */
export interface DiLoCoRoundEvents {
  addEventListener(type: 'diloco:round', listener: (evt: CustomEvent<{ round: number, contributions: Array<{ accepted: boolean }> }>) => void): void
  removeEventListener(type: 'diloco:round', listener: (evt: CustomEvent<{ round: number, contributions: Array<{ accepted: boolean }> }>) => void): void
}

export interface TrainingRecorderEvents {
  'training:update': CustomEvent<void>
}

/**
 * In-memory record of training progress for the API and dashboard: the DiLoCo round, inner step, the
 * training-loss curve and validation losses. Feed it from the trainer / DiLoCo events; memory is
 * bounded (curves are thinned by halving their resolution when full, keeping the newest points dense).
 */
export class TrainingRecorder extends TypedEventEmitter<TrainingRecorderEvents> {
  private readonly maxPoints: number
  private readonly now: () => number
  private active = false
  private round = 0
  private innerStep = 0
  private totalSteps = 0
  private innerSteps: number | undefined
  private readonly loss: LossPoint[] = []
  private readonly validation: LossPoint[] = []
  private readonly rounds: TrainingProgress['rounds'] = []

  constructor (init: TrainingRecorderInit = {}) {
    super()
    this.maxPoints = init.maxPoints ?? DEFAULT_MAX_CURVE_POINTS
    if (!Number.isSafeInteger(this.maxPoints) || this.maxPoints < 4) throw new InvalidParametersError('maxPoints must be an integer >= 4')
    this.innerSteps = init.innerSteps
    this.now = init.now ?? Date.now
  }

  /** Training started (or stopped) */
  setActive (active: boolean): void {
    this.active = active
    this.changed()
  }

  /** One inner step finished with this training loss */
  recordStep (loss: number, options: { innerStep?: number } = {}): void {
    if (!Number.isFinite(loss)) throw new InvalidParametersError('loss must be a finite number')
    this.active = true
    this.innerStep = options.innerStep ?? this.innerStep + 1
    this.totalSteps++
    push(this.loss, { step: this.totalSteps, loss, round: this.round, time: this.now() }, this.maxPoints)
    this.changed()
  }

  /**
   * A validation loss (typically after an outer step); `slotRounds`: the DiLoCo round of each slot's weights it was
   * measured on, for a model assembled from slots (they differ when it was measured as the network serves it)
   */
  recordValidation (loss: number, options: { step?: number, slotRounds?: readonly number[] } = {}): void {
    if (!Number.isFinite(loss)) throw new InvalidParametersError('loss must be a finite number')
    const slotRounds = options.slotRounds
    if (slotRounds != null && !slotRounds.every(r => Number.isSafeInteger(r) && r >= 0)) throw new InvalidParametersError('slotRounds must be integers >= 0')
    push(this.validation, { step: options.step ?? this.totalSteps, loss, round: this.round, time: this.now(), ...(slotRounds != null ? { slotRounds: [...slotRounds] } : {}) }, this.maxPoints)
    this.changed()
  }

  /** A DiLoCo round finished (the outer step was applied); the next round starts at inner step 0 */
  recordRound (info: { round?: number, accepted?: number, rejected?: number } = {}): void {
    const round = info.round ?? this.round + 1
    this.rounds.push({ round, time: this.now(), ...(info.accepted !== undefined ? { accepted: info.accepted } : {}), ...(info.rejected !== undefined ? { rejected: info.rejected } : {}) })
    if (this.rounds.length > DEFAULT_MAX_ROUNDS) this.rounds.splice(0, this.rounds.length - DEFAULT_MAX_ROUNDS)
    this.round = round
    this.innerStep = 0
    this.changed()
  }

  /**
   * Records every round a DiLoCo service applies (`diloco:round`: round r applied → round r + 1 starts,
   * with the record's accepted / rejected contributions). Inner steps still come from `recordStep`.
   * Returns the function that stops following.
   */
  followDiLoCo (diloco: DiLoCoRoundEvents): () => void {
    const onRound = (evt: CustomEvent<{ round: number, contributions: Array<{ accepted: boolean }> }>): void => {
      const accepted = evt.detail.contributions.filter(c => c.accepted).length
      this.recordRound({ round: evt.detail.round + 1, accepted, rejected: evt.detail.contributions.length - accepted })
    }
    diloco.addEventListener('diloco:round', onRound)
    return () => { diloco.removeEventListener('diloco:round', onRound) }
  }

  setInnerSteps (h: number): void {
    this.innerSteps = h
    this.changed()
  }

  progress (): TrainingProgress {
    return {
      active: this.active,
      round: this.round,
      innerStep: this.innerStep,
      ...(this.innerSteps !== undefined ? { innerSteps: this.innerSteps } : {}),
      totalSteps: this.totalSteps,
      loss: [...this.loss],
      validation: [...this.validation],
      rounds: [...this.rounds]
    }
  }

  private changed (): void {
    this.safeDispatchEvent('training:update')
  }
}

/** Append; when full, drop every other point of the older half (the newest half keeps full resolution) */
function push (points: LossPoint[], p: LossPoint, max: number): void {
  points.push(p)
  if (points.length <= max) return
  const half = Math.floor(points.length / 2)
  const older = points.slice(0, half).filter((_, i) => i % 2 === 0)
  points.splice(0, half, ...older)
}
