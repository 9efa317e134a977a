model equivariant_convolution

hyper cutoff = 4.0
hyper lmax   = 2
hyper width  = 16

input S : systems
input h : tensormap
    keys       (o3_lambda, o3_sigma)
    samples    (system, atom)
    components (o3_mu)
    properties (q)
pairs P = neighbors(S, cutoff = cutoff)

dim channel = range(width)
dim angular = range(lmax + 1)
index q            : channel
index l1, l2, L    : angular
index m1 : irrep(l1)
index m2 : irrep(l2)
index M  : irrep(L)
index i  : atoms(S)
index k  : range(8)
index p  : P
param wr[k, l1, l2, L, q] ~ normal(0.0, 1.0)

let radial[p, k] = gto(P.distance[p], k, width = 0.5) * cosine_cutoff(P.distance[p], cutoff, width = 0.5)

tensor msg
    keys       (o3_lambda = L, o3_sigma = 1)
    samples    (i)
    components (o3_mu = M)
    properties (q)
  = sum(p in P.from(i)) sum(l1, l2, m1, m2 where (l1 + l2 + L) % 2 == 0)
        (sum(k) radial[p, k] * wr[k, l1, l2, L, q])
      * cg(l1, m1, l2, m2, L, M)
      * sph(P.vector[p], l1, m1)
      * h{o3_lambda = l2, o3_sigma = 1}[P.second[p], m2, q]

output msg
