/**
 * @neuroshard/testbed: reliability testbed for NeuroShard (see README.md).
 *
 * - `fuzz/`: generated malformed and adversarial inputs against every protocol handler
 * - `netns/`: node processes in network namespaces with emulated links, scenarios, a runner
 */
export {}
