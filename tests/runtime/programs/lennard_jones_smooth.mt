model lennard_jones_smooth
# ASE's LennardJones(smooth=True): the pair energy times a C1 cutoff function, 1 below `onset`,
# (rc^2 - r^2)^2 (rc^2 + 2 r^2 - 3 ro^2) / (rc^2 - ro^2)^3 up to `cutoff`. Without `?:`, the two
# neighbour lists are the pieces: every pair closer than `cutoff` gets the polynomial, the pairs
# closer than `onset` get the rest of 1.
hyper cutoff  = 5.0
hyper onset   = 3.3
hyper sigma   = 2.0
hyper epsilon = 0.5

input S : systems
pairs P = neighbors(S, cutoff = cutoff)
pairs Q = neighbors(S, cutoff = onset)
index i : atoms(S)
index s : systems(S)

tensor energy_per_atom
    samples    (i)
    properties (energy = 0)
  = (sum(p in P.from(i)) 2.0 * epsilon * ((sigma / P.distance[p])^12 - (sigma / P.distance[p])^6)
      * (cutoff^2 - P.distance[p]^2)^2 * (cutoff^2 + 2.0 * P.distance[p]^2 - 3.0 * onset^2)
      / (cutoff^2 - onset^2)^3)
  + (sum(q in Q.from(i)) 2.0 * epsilon * ((sigma / Q.distance[q])^12 - (sigma / Q.distance[q])^6)
      * (1.0 - (cutoff^2 - Q.distance[q]^2)^2 * (cutoff^2 + 2.0 * Q.distance[q]^2 - 3.0 * onset^2)
               / (cutoff^2 - onset^2)^3))

tensor energy
    samples    (s)
    properties (energy = 0)
  = sum(i in atoms(S) where S.system[i] == s) energy_per_atom[i, 0]

output energy with gradients(positions, strain)
output energy_per_atom with gradients(positions, strain)
