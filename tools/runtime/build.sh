#!/usr/bin/env bash
# Build tools/runtime/build/robotrl_runtime against the libtorch of the installed torch wheel and the
# MuJoCo library of the installed mujoco wheel. Idempotent: a second run only rebuilds what changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build_dir="${here}/build"
fail() { echo "build.sh: $*" >&2; exit 1; }

python="${PYTHON:-}"
if [[ -z "${python}" ]]; then
  python="$(command -v python3 || command -v python || true)"
fi
[[ -n "${python}" ]] || fail "no python found (set PYTHON=/path/to/python)"
command -v "${python}" >/dev/null || fail "python not found: ${python}"
command -v cmake >/dev/null || fail "cmake not found (need cmake >= 3.18)"
command -v "${CXX:-c++}" >/dev/null || fail "no C++ compiler found (need a C++17 compiler; set CXX)"

paths="$("${python}" - <<'PY' 2>/dev/null
import glob, os
import torch.utils, mujoco, gymnasium
mujoco_dir = os.path.dirname(mujoco.__file__)
libs = sorted(glob.glob(os.path.join(mujoco_dir, "libmujoco.so.*")))
print(torch.utils.cmake_prefix_path)
print(os.path.join(mujoco_dir, "include"))
print(libs[-1] if libs else "")
print(os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets"))
PY
)" || fail "${python} cannot import torch, mujoco and gymnasium (install robotrl's dependencies first)"
{ read -r torch_prefix; read -r mujoco_include; read -r mujoco_library; read -r asset_dir; } <<<"${paths}"
[[ -f "${mujoco_include}/mujoco/mujoco.h" ]] || fail "mujoco headers not found in ${mujoco_include}"
[[ -n "${mujoco_library}" && -f "${mujoco_library}" ]] || fail "libmujoco.so.* not found in the mujoco wheel"
[[ -d "${torch_prefix}/Torch" ]] || fail "libtorch CMake config not found in ${torch_prefix}"
[[ -f "${asset_dir}/reacher.xml" ]] || fail "gymnasium MuJoCo assets not found in ${asset_dir}"

mkdir -p "${build_dir}"
cmake -S "${here}" -B "${build_dir}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="${torch_prefix}" \
  -DMUJOCO_INCLUDE_DIR="${mujoco_include}" -DMUJOCO_LIBRARY="${mujoco_library}" \
  -DROBOTRL_DEFAULT_ASSET_DIR="${asset_dir}" >"${build_dir}/cmake.log" 2>&1 \
  || fail "cmake configure failed; see ${build_dir}/cmake.log"
cmake --build "${build_dir}" -- -j1 >"${build_dir}/make.log" 2>&1 \
  || fail "compile failed; see ${build_dir}/make.log"
echo "${build_dir}/robotrl_runtime"
