model spherical_expansion

hyper cutoff      = 5.0
hyper n_radial    = 6
hyper max_angular = 4
hyper atomic_width = 0.3

input S : systems
pairs P = neighbors(S, cutoff = cutoff)

dim radial  = range(n_radial)
dim angular = range(max_angular + 1)
dim species = species(S)

index n       : radial
index l       : angular
index a, b    : species
index i       : atoms(S)
index m       : irrep(l)

tensor rho
    keys       (o3_lambda = l, o3_sigma = 1, center_type = S.type[i], neighbor_type = b)
    samples    (i)
    components (o3_mu = m)
    properties (n)
  = sum(p in P.from(i) where S.type[P.second[p]] == b)
        soap_radial(P.distance[p], n, l, n_radial = n_radial, cutoff = cutoff,
                    density_width = atomic_width)
      * cosine_cutoff(P.distance[p], cutoff, width = 0.5)
      * sph(P.vector[p], l, m)

output rho with gradients(positions, strain)
