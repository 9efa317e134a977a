model lennard_jones
hyper cutoff  = 5.0
hyper sigma   = 2.0
hyper epsilon = 0.5

input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index s : systems(S)

tensor energy_per_atom
    samples    (i)
    properties (energy = 0)
  = sum(p in P.from(i)) 2.0 * epsilon * ((sigma / P.distance[p])^12 - (sigma / P.distance[p])^6
                                          - (sigma / cutoff)^12 + (sigma / cutoff)^6)

tensor energy
    samples    (s)
    properties (energy = 0)
  = sum(i in atoms(S) where S.system[i] == s) energy_per_atom[i, 0]

output energy with gradients(positions, strain)
output energy_per_atom with gradients(positions, strain)
