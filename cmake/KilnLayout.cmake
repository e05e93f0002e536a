# The folder layout is the architecture (see DESIGN.md): each folder is one library and may include
# only the folders it declares, directly or through the folders it depends on.
#
# The rule is enforced by the compiler, not by review: every library compiles against an "include
# view", a directory of symlinks holding only its own folder and the folders it may use.  Including
# a header from any other folder is then a plain "No such file or directory" build error.
#
#   kiln_library(<folder> SOURCES ... [DEPS <folder>...] [LIBS <third-party target>...]
#                [PROTOS <file.proto>...] [TESTS <file_test.cc>...])
#
# <folder> is the path from the repository root ("base", "engine/solver"); the target is named
# kiln_<folder with / replaced by _>.  Protos compile into ${KILN_GEN_DIR}/<folder>/ and are
# included as "<folder>/<name>.pb.h", the same path a hand-written header would have.

set(KILN_GEN_DIR "${CMAKE_BINARY_DIR}/gen")
set(KILN_VIEW_DIR "${CMAKE_BINARY_DIR}/include_views")

function(kiln_target_name out folder)
  string(REPLACE "/" "_" name "kiln_${folder}")
  set(${out} "${name}" PARENT_SCOPE)
endfunction()

# Adds <folder> (and its generated twin) to the include view <view>.
function(_kiln_view_link view folder)
  foreach(root src gen)
    if(root STREQUAL "src")
      set(target_dir "${CMAKE_SOURCE_DIR}/${folder}")
    else()
      set(target_dir "${KILN_GEN_DIR}/${folder}")
      file(MAKE_DIRECTORY "${target_dir}")
    endif()
    set(link "${view}/${root}/${folder}")
    get_filename_component(parent "${link}" DIRECTORY)
    file(MAKE_DIRECTORY "${parent}")
    if(NOT EXISTS "${link}")
      file(CREATE_LINK "${target_dir}" "${link}" SYMBOLIC)
    endif()
  endforeach()
endfunction()

# Creates the include view for <target> over the given folders and attaches it.
function(kiln_attach_view target)
  set(view "${KILN_VIEW_DIR}/${target}")
  file(REMOVE_RECURSE "${view}")
  foreach(folder ${ARGN})
    _kiln_view_link("${view}" "${folder}")
  endforeach()
  target_include_directories(${target} PRIVATE "${view}/src" "${view}/gen")
endfunction()

# The folders a library may see: itself plus the transitive closure of its declared dependencies.
function(kiln_visible_folders out folder)
  set(result "${folder}")
  set(queue ${ARGN})
  while(queue)
    list(POP_FRONT queue dep)
    if(dep IN_LIST result)
      continue()
    endif()
    list(APPEND result "${dep}")
    get_property(dep_deps GLOBAL PROPERTY "KILN_DEPS_${dep}")
    list(APPEND queue ${dep_deps})
  endwhile()
  set(${out} "${result}" PARENT_SCOPE)
endfunction()

function(kiln_compile_options target)
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter
                                           -Wno-missing-field-initializers)
endfunction()

function(kiln_library folder)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LIBS;PROTOS;TESTS;TEST_LIBS" ${ARGN})
  kiln_target_name(target "${folder}")
  foreach(dep ${ARG_DEPS})
    get_property(known GLOBAL PROPERTY "KILN_DEPS_${dep}" SET)
    if(NOT known)
      message(FATAL_ERROR "${folder} depends on ${dep}, which is not declared (yet): "
                          "dependencies must be declared before their users, so no cycle can form")
    endif()
  endforeach()
  set_property(GLOBAL PROPERTY "KILN_DEPS_${folder}" "${ARG_DEPS}")

  set(proto_sources "")
  foreach(proto ${ARG_PROTOS})
    kiln_compile_proto(proto_sources "${folder}" "${proto}")
  endforeach()

  add_library(${target} STATIC ${ARG_SOURCES} ${proto_sources})
  kiln_compile_options(${target})
  set(dep_targets "")
  foreach(dep ${ARG_DEPS})
    kiln_target_name(dep_target "${dep}")
    list(APPEND dep_targets ${dep_target})
  endforeach()
  target_link_libraries(${target} PUBLIC ${dep_targets} ${ARG_LIBS})
  kiln_visible_folders(visible "${folder}" ${ARG_DEPS})
  set_property(GLOBAL PROPERTY "KILN_VISIBLE_${folder}" "${visible}")
  kiln_attach_view(${target} ${visible})

  if(ARG_TESTS AND KILN_BUILD_TESTS)
    set(test_target "${target}_test")
    add_executable(${test_target} ${ARG_TESTS})
    kiln_compile_options(${test_target})
    target_link_libraries(${test_target} PRIVATE ${target} ${ARG_TEST_LIBS} GTest::gmock
                                                 GTest::gtest_main)
    kiln_attach_view(${test_target} ${visible})
    gtest_discover_tests(${test_target} DISCOVERY_TIMEOUT 60
                         PROPERTIES LABELS unit)
  endif()
endfunction()

# Executables, test programs and benchmarks that sit outside the library folders (tools/,
# tests/, benchmarks/) declare the folders they use the same way.
function(kiln_executable target)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LIBS" ${ARGN})
  add_executable(${target} ${ARG_SOURCES})
  kiln_compile_options(${target})
  set(dep_targets "")
  foreach(dep ${ARG_DEPS})
    kiln_target_name(dep_target "${dep}")
    list(APPEND dep_targets ${dep_target})
  endforeach()
  target_link_libraries(${target} PRIVATE ${dep_targets} ${ARG_LIBS})
  kiln_visible_folders(visible "" ${ARG_DEPS})
  list(REMOVE_ITEM visible "")
  kiln_attach_view(${target} ${visible})
endfunction()

# protoc into ${KILN_GEN_DIR}; import paths are written from the repository root.
function(kiln_compile_proto out_var folder proto)
  get_filename_component(name "${proto}" NAME_WE)
  get_filename_component(rel_dir "${proto}" DIRECTORY)
  if(rel_dir)
    set(rel "${folder}/${rel_dir}")
  else()
    set(rel "${folder}")
  endif()
  set(gen_h "${KILN_GEN_DIR}/${rel}/${name}.pb.h")
  set(gen_cc "${KILN_GEN_DIR}/${rel}/${name}.pb.cc")
  add_custom_command(
    OUTPUT "${gen_h}" "${gen_cc}"
    COMMAND protobuf::protoc --cpp_out=${KILN_GEN_DIR} -I${CMAKE_SOURCE_DIR}
            "${CMAKE_SOURCE_DIR}/${rel}/${name}.proto"
    DEPENDS "${CMAKE_SOURCE_DIR}/${rel}/${name}.proto" protobuf::protoc
    COMMENT "protoc ${rel}/${name}.proto")
  # Generated code is not ours to keep warning-free.
  set_source_files_properties("${gen_cc}" PROPERTIES COMPILE_OPTIONS "-w")
  set(${out_var} ${${out_var}} "${gen_cc}" PARENT_SCOPE)
endfunction()
