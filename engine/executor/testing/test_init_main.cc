// kiln-init for the executor's own tests: the same program as tools/kiln-init, built here so
// the tests do not depend on tools/.
#include "engine/executor/init_main.h"

int main(int argc, char** argv) { return kiln::engine::InitMain(argc, argv); }
