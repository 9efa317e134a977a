model two_hop_energy
hyper cutoff = 3.5

input S : systems
pairs P = neighbors(S, cutoff = cutoff)

dim species = species(S)
index a : species
index i : atoms(S)
index s : systems(S)
index k : range(3)
param w[a, k] ~ normal(0.0, 1.0)

# a neighbourhood descriptor of every atom ...
tensor h1
    samples    (i)
    properties (k)
  = sum(p in P.from(i)) gto(P.distance[p], k, width = 0.8) * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

# ... read at the neighbours: the energy of an atom depends on atoms two cutoffs away
tensor energy_per_atom
    samples    (i)
    properties (energy = 0)
  = sum(p in P.from(i)) sum(k) w[S.type[P.second[p]], k] * tanh(h1[P.second[p], k])
      * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

tensor energy
    samples    (s)
    properties (energy = 0)
  = sum(i in atoms(S) where S.system[i] == s) energy_per_atom[i, 0]

output energy with gradients(positions, strain)
output energy_per_atom with gradients(positions, strain)
