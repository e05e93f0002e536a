// The whole LLB builder API (see llb/state.h for the model and llb/README.md for an example).
#pragma once

#include "llb/caps.h"         // IWYU pragma: export
#include "llb/constraints.h"  // IWYU pragma: export
#include "llb/exec.h"         // IWYU pragma: export
#include "llb/fileop.h"       // IWYU pragma: export
#include "llb/source.h"       // IWYU pragma: export
#include "llb/state.h"        // IWYU pragma: export
