model two_hop
# each atom's output reads its neighbours' neighbourhoods: interaction range twice the cutoff

hyper cutoff = 3.0

input S : systems
pairs P = neighbors(S, cutoff = cutoff)
index i : atoms(S)
index s : systems(S)

tensor density
    samples (i)
    properties (k = 0)
  = sum(p in P.from(i)) exp(-P.distance[p]) * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

tensor hop
    samples (i)
    properties (k = 0)
  = sum(p in P.from(i)) tanh(density[P.second[p], 0]) * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

tensor energy
    samples (s)
    properties (energy = 0)
  = sum(i in atoms(S) where S.system[i] == s) hop[i, 0] * hop[i, 0]

output hop with gradients(positions)
output energy with gradients(positions, strain)
