# examples/lennard_jones.mt over a half neighbour list (each pair once): the exported model's C++
# operator orients the engine's full list as mtdsl's half lists (tests/runtime/test_export_cpp.py)
# A Lennard-Jones pair potential with ASE's smooth cutoff (ase.calculators.lj.LennardJones(smooth=True)):
# the pair energy 4 epsilon ((sigma/r)^12 - (sigma/r)^6) times a switching function of r^2 that goes
# from 1 at the onset radius to 0 at the cutoff (jax-md's, C^1), written with `?:`: differentiated
# branch by branch, so energy, forces and stress come from `model(frames, gradients=[...])`.
model lennard_jones

hyper sigma   = 1.0
hyper epsilon = 1.0
hyper cutoff  = 3.0    # ASE's rc (default 3 sigma)
hyper onset   = 1.98   # ASE's ro (default 0.66 rc)

input S : systems
pairs P = neighbors(S, cutoff = cutoff, full = false)

index s : systems(S)
index p : P

# the pair energy and the switching function, of the squared distance as in ASE
let r2[p] = P.distance[p]^2
let lj[p] = 4.0 * epsilon * ((sigma^2 / r2[p])^6 - (sigma^2 / r2[p])^3)
let switch[p] = r2[p] < onset^2 ? 1.0
              : r2[p] < cutoff^2 ? (cutoff^2 - r2[p])^2 * (cutoff^2 + 2.0 * r2[p] - 3.0 * onset^2)
                                   / (cutoff^2 - onset^2)^3
              : 0.0

tensor energy
    samples    (s)
    properties (energy = 0)
  = sum(i in atoms(S) where S.system[i] == s) sum(q in P.from(i))
      lj[q] * switch[q]   # a half list: every pair once

output energy with gradients(positions, strain)
