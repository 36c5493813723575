//! R1CS gadgets: the Poseidon2 permutation, keyed compression, the rate-2 sponge and the keyed Merkle path
//! check of `circuit/codex/merkle.circom` (marketplace-facts §8.4–8.5).
//!
//! Cost: the S-box x^5 is three constraints (x², x⁴, x⁴·x); round constants and the linear layers are free
//! linear combinations. A permutation has 8·3 + 56 = 80 S-boxes, so 240 constraints; an S-box on a constant
//! lane (the sponge's first absorb, a constant key) costs nothing.

use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::prelude::*;
use ark_relations::r1cs::SynthesisError;

use crate::poseidon2::{EXTERNAL, F, FULL_ROUNDS, INTERNAL, SPONGE_IV_RATE2};

/// A field element in the circuit.
pub type Fv = FpVar<F>;
/// A bit in the circuit.
pub type Bit = Boolean<F>;

/// x^5 in three constraints (none when `x` is a constant).
fn sbox(x: &Fv) -> Result<Fv, SynthesisError> {
    let x2 = x.square()?;
    let x4 = x2.square()?;
    Ok(x4 * x)
}

/// The external matrix circ(2,1,1): free.
fn external_mix([x, y, z]: [Fv; 3]) -> [Fv; 3] {
    let sum = &x + &y + &z;
    [x + &sum, y + &sum, z + sum]
}

fn full_round(state: [Fv; 3], constants: &[F; 3]) -> Result<[Fv; 3], SynthesisError> {
    let [x, y, z] = state;
    let [cx, cy, cz] = constants;
    let state = [sbox(&(x + *cx))?, sbox(&(y + *cy))?, sbox(&(z + *cz))?];
    Ok(external_mix(state))
}

/// The Poseidon2 permutation (t = 3, the old HorizenLabs constants): the same as [`crate::poseidon2::permute`].
pub fn permute(state: [Fv; 3]) -> Result<[Fv; 3], SynthesisError> {
    let mut state = external_mix(state);
    let mut rounds = EXTERNAL.as_chunks::<3>().0.iter();
    for constants in rounds.by_ref().take(FULL_ROUNDS / 2) {
        state = full_round(state, constants)?;
    }
    let [mut x, mut y, mut z] = state;
    for c in &INTERNAL {
        x = sbox(&(x + *c))?;
        let sum = &x + &y + &z;
        x += &sum;
        y += &sum;
        z = z.double()? + sum;
    }
    let mut state = [x, y, z];
    for constants in rounds {
        state = full_round(state, constants)?;
    }
    Ok(state)
}

/// Keyed 2-to-1 compression: lane 0 of `permute(a, b, key)`.
pub fn compress(a: Fv, b: Fv, key: Fv) -> Result<Fv, SynthesisError> {
    let [out, _, _] = permute([a, b, key])?;
    Ok(out)
}

/// The rate-2 sponge (initial state (0, 0, 2^64 + 770), `10*` padding, lane 0 out) of `inputs`.
pub fn sponge(inputs: &[Fv]) -> Result<Fv, SynthesisError> {
    let mut padded: Vec<Fv> = inputs.to_vec();
    padded.push(Fv::one());
    if padded.len() % 2 == 1 {
        padded.push(Fv::zero());
    }
    let mut state = [Fv::zero(), Fv::zero(), Fv::constant(SPONGE_IV_RATE2)];
    for [a, b] in padded.as_chunks::<2>().0 {
        let [x, y, z] = state;
        state = permute([x + a, y + b, z])?;
    }
    let [out, _, _] = state;
    Ok(out)
}

/// `value` as a sum of `bits` (least significant first): a free linear combination.
pub fn from_bits(bits: &[Bit]) -> Fv {
    let mut sum = Fv::zero();
    let mut weight = F::from(1u64);
    for bit in bits {
        sum += Fv::from(bit.clone()) * weight;
        weight = weight + weight;
    }
    sum
}

/// The `n` low bits of `value` as new witnesses, with `value` = their sum enforced: so `value` < 2^n.
pub fn small_bits(value: &Fv, n: usize) -> Result<Vec<Bit>, SynthesisError> {
    let cs = value.cs();
    let known = value.value().ok().map(|v| crate::poseidon2::to_le_bytes(&v));
    let bits = (0..n)
        .map(|i| {
            Bit::new_witness(cs.clone(), || {
                let bytes = known.ok_or(SynthesisError::AssignmentMissing)?;
                let byte = bytes.get(i / 8).copied().unwrap_or(0);
                Ok((byte >> (i % 8)) & 1 == 1)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    from_bits(&bits).enforce_equal(value)?;
    Ok(bits)
}

/// The root that `path` leads to from `leaf`, as `RootFromMerklePath` in merkle.circom:
///
/// - `path_bits`: the leaf index, least significant bit first; `last_bits`: the index of the last leaf;
/// - the key of level i is bottom (i = 0) + 2·odd, where odd = the node is the last of its layer
///   (index and last index agree on bits i.. ) and a left child; the node is compressed with its sibling as
///   the path gives it (0 for an odd node);
/// - all `path.len()` levels are computed; `mask_bits` (length `path.len() + 1`, its first bit taken as 1)
///   selects the level where the tree ends: the root is the node above the last level whose mask bit is 1.
///
/// The caller makes sure the bits are bits (they are [`Bit`]s here) and the slices have matching lengths.
pub fn root_from_path(
    leaf: Fv,
    path_bits: &[Bit],
    last_bits: &[Bit],
    mask_bits: &[Bit],
    path: &[Fv],
) -> Result<Fv, SynthesisError> {
    if path_bits.len() != path.len() || last_bits.len() != path.len() || mask_bits.len() != path.len() + 1 {
        return Err(SynthesisError::Unsatisfiable);
    }
    // is_last[i]: the index and the last index agree on bits i..depth.
    let mut is_last = vec![Bit::TRUE; path.len() + 1];
    for i in (0..path.len()).rev() {
        let (here, above) = is_last.split_at_mut(i + 1);
        let (Some(slot), Some(up), Some(p), Some(l)) =
            (here.last_mut(), above.first(), path_bits.get(i), last_bits.get(i))
        else {
            return Err(SynthesisError::Unsatisfiable);
        };
        *slot = up & &p.is_eq(l)?;
    }
    let mut node = leaf;
    let mut root = Fv::zero();
    let mut mask_here = Bit::TRUE; // maskBitsCorrected[0] = 1
    for (level, (((sibling, bit), last), mask_above)) in
        path.iter().zip(path_bits).zip(&is_last).zip(mask_bits.iter().skip(1)).enumerate()
    {
        let odd = last & &!bit;
        let bottom = if level == 0 { Fv::one() } else { Fv::zero() };
        let key = bottom + Fv::from(odd) * F::from(2u64);
        let switch = (sibling - &node) * Fv::from(bit.clone());
        let left = &node + &switch;
        let right = sibling - &switch;
        node = compress(left, right, key)?;
        root += (Fv::from(mask_here) - Fv::from(mask_above.clone())) * &node;
        mask_here = mask_above.clone();
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use ark_ff::UniformRand;
    use ark_relations::r1cs::ConstraintSystem;
    use ark_std::rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;
    use crate::poseidon2;

    fn witnesses(cs: &ark_relations::r1cs::ConstraintSystemRef<F>, values: &[F]) -> Vec<Fv> {
        values.iter().map(|v| Fv::new_witness(cs.clone(), || Ok(*v)).unwrap()).collect()
    }

    #[test]
    fn permutation_matches_native_and_costs_240() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for _ in 0..4 {
            let input = [F::rand(&mut rng), F::rand(&mut rng), F::rand(&mut rng)];
            let cs = ConstraintSystem::<F>::new_ref();
            let [a, b, c]: [Fv; 3] = witnesses(&cs, &input).try_into().unwrap();
            let out = permute([a, b, c]).unwrap();
            let mut native = input;
            poseidon2::permute(&mut native);
            let got: Vec<F> = out.iter().map(|v| v.value().unwrap()).collect();
            assert_eq!(got, native);
            assert!(cs.is_satisfied().unwrap());
            println!("constraints per permutation: {}", cs.num_constraints());
            assert_eq!(cs.num_constraints(), 240);
        }
    }

    #[test]
    fn compress_and_sponge_match_native() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let cs = ConstraintSystem::<F>::new_ref();
        let values: Vec<F> = (0..7).map(|_| F::rand(&mut rng)).collect();
        let vars = witnesses(&cs, &values);
        for key in 0..4u64 {
            let out = compress(vars[0].clone(), vars[1].clone(), Fv::constant(F::from(key))).unwrap();
            assert_eq!(out.value().unwrap(), poseidon2::compress(values[0], values[1], key));
        }
        for n in 0..=values.len() {
            assert_eq!(sponge(&vars[..n]).unwrap().value().unwrap(), poseidon2::sponge(&values[..n]), "n = {n}");
        }
        assert!(cs.is_satisfied().unwrap());
        // A wrong claim is caught.
        let out = sponge(&vars[..3]).unwrap();
        out.enforce_equal(&Fv::new_witness(cs.clone(), || Ok(F::from(5u64))).unwrap()).unwrap();
        assert!(!cs.is_satisfied().unwrap());
    }

    /// The path check against the native tree on odd-sized trees, every leaf, paths zero-padded to 6 levels.
    #[test]
    fn merkle_path_matches_native_trees() {
        let depth = 6;
        for leaves in [1usize, 2, 3, 5, 8, 11] {
            let values: Vec<F> = (0..leaves as u64).map(|i| F::from(i * 7 + 1)).collect();
            let tree = poseidon2::MerkleTree::new(&values).unwrap();
            let levels = poseidon2::merkle::depth(leaves as u64);
            for index in 0..leaves {
                let cs = ConstraintSystem::<F>::new_ref();
                let mut path = tree.proof(index).unwrap();
                path.resize(depth, F::from(0u64));
                let path = witnesses(&cs, &path);
                let bit = |v: usize, i: usize| Bit::new_witness(cs.clone(), || Ok((v >> i) & 1 == 1)).unwrap();
                let path_bits: Vec<Bit> = (0..depth).map(|i| bit(index, i)).collect();
                let last_bits: Vec<Bit> = (0..depth).map(|i| bit(leaves - 1, i)).collect();
                let mask_bits: Vec<Bit> = (0..=depth).map(|i| bit(usize::from(i < levels), 0)).collect();
                let leaf = witnesses(&cs, &values[index..=index]).remove(0);
                let root = root_from_path(leaf, &path_bits, &last_bits, &mask_bits, &path).unwrap();
                assert_eq!(root.value().unwrap(), tree.root(), "{leaves} leaves, index {index}");
                assert!(cs.is_satisfied().unwrap());
            }
        }
    }
}
