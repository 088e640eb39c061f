import { BlockList, isIP } from 'node:net'
import { InvalidParametersError } from '@neuroshard/interface'

/**
 * A set of IP address ranges (CIDR blocks such as `10.0.0.0/8` or `fc00::/7`, or single addresses) whose
 * `has(ip)` answers whether `ip` falls in any of them. Gossipsub's `IPColocationFactorWhitelist` is a
 * `Set<string>` of exact addresses that it only ever asks `has(ip)`; this set lets it exempt whole ranges
 * (127.0.0.0/8 cannot be listed address by address). IPv4-mapped IPv6 addresses match IPv4 ranges.
 */
export class IpRangeSet extends Set<string> {
  private readonly blocks: BlockList

  /** @throws InvalidParametersError for an entry that is not an address or CIDR block */
  constructor (ranges: Iterable<string> = []) {
    super()
    this.blocks = new BlockList()
    for (const range of ranges) {
      this.add(range)
    }
  }

  override add (range: string): this {
    const [address, prefixText, ...rest] = String(range).trim().split('/')
    const family = isIP(address)
    if (family === 0 || rest.length > 0) {
      throw new InvalidParametersError(`Invalid IP range ${String(range)}: expected an address or a CIDR block such as 10.0.0.0/8`)
    }
    const bits = family === 4 ? 32 : 128
    const prefix = prefixText === undefined ? bits : Number(prefixText)
    if (prefixText === '' || !Number.isInteger(prefix) || prefix < 0 || prefix > bits) {
      throw new InvalidParametersError(`Invalid IP range ${String(range)}: the prefix length must be an integer from 0 to ${bits}`)
    }
    this.blocks.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6')
    return super.add(`${address}/${prefix}`)
  }

  /** Whether `ip` (an address, not a range) lies in one of the ranges */
  override has (ip: string): boolean {
    const family = isIP(ip)
    if (family === 0) {
      return super.has(ip)
    }
    return this.blocks.check(ip, family === 4 ? 'ipv4' : 'ipv6')
  }

  override delete (): boolean {
    throw new InvalidParametersError('IpRangeSet does not support removing ranges')
  }

  override clear (): void {
    throw new InvalidParametersError('IpRangeSet does not support removing ranges')
  }
}
