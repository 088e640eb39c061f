/**
 * Defaults for every option. Each one names the paper it follows where the literature disagrees.
 */

/**
 * Coordinates per block for the blocked passes over d. 2048 coordinates × 32 inputs × 8 bytes (the Float64
 * scratch rows) is 512 KiB, which stays in a typical L2 cache. Results do not depend on it (see README).
 *
 * @default 2048
 */
export const DEFAULT_BLOCK_SIZE = 2048

/**
 * What to do with inputs that contain NaN or ±Infinity.
 *
 * @default 'reject'
 */
export const DEFAULT_NON_FINITE = 'reject'

/**
 * Krum's neighbour count: `n − f − 2` as in Blanchard et al. 2017 ("Machine learning with adversaries:
 * Byzantine tolerant gradient descent"), NeurIPS.
 *
 * @default 'n-f-2'
 */
export const DEFAULT_KRUM_NEIGHBOURS = 'n-f-2'

/**
 * Median of an even count: the mean of the two middle values, as in Yin et al. 2018.
 *
 * @default 'mean-of-middle'
 */
export const DEFAULT_EVEN_MEDIAN = 'mean-of-middle'

/**
 * Smoothing ν of the smoothed Weiszfeld algorithm (Pillutla, Kakade & Harchaoui 2019/2022, "Robust aggregation
 * for federated learning", Algorithm 3): distances below ν are replaced by ν.
 *
 * @default 1e-6
 */
export const DEFAULT_WEISZFELD_NU = 1e-6

/**
 * Maximum Weiszfeld iterations.
 *
 * @default 100
 */
export const DEFAULT_WEISZFELD_MAX_ITERATIONS = 100

/**
 * Weiszfeld stops when a step is at most this × the median distance from the iterate to the inputs.
 *
 * @default 1e-6
 */
export const DEFAULT_WEISZFELD_TOLERANCE = 1e-6

/**
 * CenteredClip iterations when starting from the previous round's centre: L = 1, as in Karimireddy, He & Jaggi
 * 2021 ("Learning from history for Byzantine robust optimization"), Section 5.
 *
 * @default 1
 */
export const DEFAULT_CENTERED_CLIP_ITERATIONS_PREVIOUS = 1

/**
 * CenteredClip iterations for any other start (iterate to tolerance).
 *
 * @default 100
 */
export const DEFAULT_CENTERED_CLIP_MAX_ITERATIONS = 100

/**
 * CenteredClip stops when a step moves the centre by at most `tolerance × τ`.
 *
 * @default 1e-6
 */
export const DEFAULT_CENTERED_CLIP_TOLERANCE = 1e-6

/**
 * Bucketing seed (Karimireddy, He & Jaggi 2022 draw a fresh random permutation every round; the seed makes the
 * sequence of permutations reproducible).
 *
 * @default 0
 */
export const DEFAULT_BUCKETING_SEED = 0

/**
 * Sums over d (distances, step lengths) are formed per chunk of this many coordinates, and the chunks' partial
 * sums are added in chunk order. Worker threads take whole chunks, so results are bit-for-bit the same for
 * every thread count and every block size.
 */
export const REDUCE_CHUNK = 65536
