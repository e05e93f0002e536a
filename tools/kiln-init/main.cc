// kiln-init: sets up one build step's sandbox and runs its process as PID 1 of the step's pid
// namespace.  Only the executor starts it (see engine/executor/init_main.h); run by hand it
// refuses, since it is not PID 1 of a fresh namespace.
#include "engine/executor/init_main.h"

int main(int argc, char** argv) { return kiln::engine::InitMain(argc, argv); }
