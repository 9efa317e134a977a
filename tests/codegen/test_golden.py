"""Golden tests: IR -> loop nest -> C++ text, pinned (update them on purpose when the lowering or the
C++ printer changes)."""

from mtdsl.codegen.schedule import abi
from mtdsl.codegen.cpp import render_module, render_sph_function
from mtdsl.ir import nodes as ir

V = ir.Var

SPH1 = """\
static inline void mt_sph1(mt_vec v, real* out) {
    const real r = std::sqrt((((v.x * v.x) + (v.y * v.y)) + (v.z * v.z)));
    const bool origin = (r == real(0.0));
    const real safe_r = (origin ? real(1.0) : r);
    const real x = (v.x / safe_r);
    const real y = (v.y / safe_r);
    const real z = (v.z / safe_r);
    const real c1 = ((x * real(1.0)) - (y * real(0.0)));
    const real s1 = ((x * real(0.0)) + (y * real(1.0)));
    const real q1_1 = (real(1.0) * real(1.0));
    const real q1_0 = ((real(1.0) * z) * real(1.0));
    out[0] = real(0.0);
    out[1] = (origin ? real(0.28209479177387814) : (real(0.28209479177387814) * real(1.0)));
    out[2] = real(0.0);
    out[3] = (origin ? real(0.0) : ((real(0.4886025119029199) * q1_1) * s1));
    out[4] = (origin ? real(0.0) : (real(0.4886025119029199) * q1_0));
    out[5] = (origin ? real(0.0) : ((real(0.4886025119029199) * q1_1) * c1));
}"""

COORDINATION = """\
// tensor coordination: accumulate schedule, OpenMP over i

extern "C" int64_t mt_kernel_0(void** mt_arrays, const int64_t* mt_scalars, int64_t mt_threads) {
    real* const mt_buffer = (real*) mt_arrays[0];  // the output buffer
    const int64_t s0 = mt_scalars[0];  // number of species(S)
    const int64_t s1 = mt_scalars[1];  // atoms in S
    const int64_t* const a1 = (const int64_t*) mt_arrays[1];  // P CSR offsets
    const int32_t* const a2 = (const int32_t*) mt_arrays[2];  // S.type
    const int64_t s2 = mt_scalars[2];  // pairs in P
    const int64_t* const a3 = (const int64_t*) mt_arrays[3];  // P.second
    const int64_t* const a4 = (const int64_t*) mt_arrays[4];  // rank of each atomic number in species(S)
    const int64_t s3 = mt_scalars[3];  // size of that table
    const real* const a5 = (const real*) mt_arrays[5];  // P.distance
    int64_t err = 0;
    const int64_t st0 = (s1 * INT64_C(2));  // stride of b
    const int64_t st1 = INT64_C(2);  // stride of i
    const int64_t st2 = INT64_C(1);  // stride of k
    #pragma omp parallel for schedule(dynamic, 4) num_threads(mt_threads) reduction(|: err)
    for (int64_t v1 = INT64_C(0); v1 < s1; ++v1)  /* i in atoms(S) */ {
        const int64_t lo3 = mt_seg(a1, s1, v1, INT64_C(0));
        const int64_t hi4 = mt_seg(a1, s1, v1, INT64_C(1));
        for (int64_t v2 = lo3; v2 < hi4; ++v2)  /* p in P.from(i) = i */ {
            const real d8 = a5[v2];
            const real f9 = std::exp((-d8));
            for (int64_t v5_once = 0; v5_once < 1; ++v5_once)  /* b in species(S) = S.type[P.second[p]] */ {
                const int64_t v5 = (int64_t) a2[a3[v2]];
                const int64_t v5_rank = mt_at(a4, INT64_C(0), INT64_C(0), mt_dense(INT64_C(0), v5, INT64_C(0), s3));
                if ((v5_rank < INT64_C(0))) continue;
                const int64_t o7 = ((v1 * st1) + (v5_rank * st0));
                #pragma omp simd
                for (int64_t v6 = INT64_C(0); v6 < INT64_C(2); ++v6)  /* k in range[r](0, 2) */ {
                    mt_buffer[(o7 + ((v6 - INT64_C(0)) * st2))] += (f9 * (real)((v6 + INT64_C(1))));
                }
            }
        }
    }
    return err;
}
"""


def coordination_module():
    """Per atom, neighbour type and k: sum over P.from(i) of exp(-r) * (k + 1), for the second atom's type."""
    body = ir.Reduce((ir.Binder("p", ir.PairsFrom("P", V("i"))),),
                     ir.Binary("mul", ir.Call("exp", (ir.Unary("neg", ir.Data("P", "distance", (V("p"),))),)),
                               ir.Binary("add", V("k"), ir.Const(1))),
                     ir.Binary("eq", ir.Data("S", "type", (ir.Data("P", "second", (V("p"),)),)), V("b")))
    kernel = ir.TensorKernel(
        "coordination",
        (ir.Binder("b", ir.SpeciesDomain("S")), ir.Binder("i", ir.AtomsDomain("S")), ir.Binder("k", ir.RangeDomain("r", 0, 2))),
        keys=(ir.Entry("neighbor_type", "value", V("b")),), samples=(ir.Entry("i", "atoms", V("i"), "S"),),
        components=(), properties=(ir.Entry("k", "value", V("k")),), body=body)
    return ir.Module("golden", (ir.SystemsInput("S"),), (), (ir.PairsDecl("P", "S", 3.0),), (), (kernel,),
                     (ir.Output("coordination"),))


def test_spherical_harmonics_l1():
    assert render_sph_function("mt_sph1", 1, "metatensor") == SPH1


def test_long_routines_are_compiled_once():
    """A routine beyond `INLINE_LIMIT` statements is `noinline` (g++ -O3 optimized a copy of
    `mt_sph4` in every kernel of the power spectrum: 0.2 s of a cold compile); short ones stay inline."""
    assert render_sph_function("mt_sph3", 3, "metatensor").startswith("static inline void mt_sph3(")
    assert render_sph_function("mt_sph4", 4, "metatensor").startswith("static __attribute__((noinline)) void mt_sph4(")


def test_segment_sum_with_equality_bound_species():
    """`P.from(i)` is a CSR segment, `b` comes from the pair, exp(-r) is hoisted out of the k loop,
    and the innermost loop over a kernel index (its own entry per iteration) is `omp simd`."""
    rendered = render_module(coordination_module())
    kernel = rendered.kernels["coordination"]
    assert kernel.source == COORDINATION
    assert kernel.plan.schedule == "accumulate" and kernel.plan.parallel
    assert [loop.kind for loop in kernel.plan.loops] == ["domain", "pairs_of", "equal", "domain"]
    assert kernel.arrays[0] == abi.OutputBuffer()
    assert abi.PairsField("P", "offsets") in kernel.arrays and abi.AtomCount("S") in kernel.scalars
