#!/usr/bin/perl
# Regex-heavy text job for run.sh's perl-regex workload.
# Reads text.txt (from gen_inputs.py) on stdin; prints only data-derived results.
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

my (%emails, %domains, %years, %words, %bigrams);
my ($n_lines, $n_dates, $n_urls, $n_nums, $vowels) = (0, 0, 0, 0, 0);
my %mon = (Jan => 1, Feb => 2, Mar => 3, Apr => 4, May => 5, Jun => 6,
           Jul => 7, Aug => 8, Sep => 9, Oct => 10, Nov => 11, Dec => 12);
my $md5 = Digest::MD5->new;
my @kept;

while (my $line = <STDIN>) {
    chomp $line;
    $n_lines++;
    while ($line =~ /\b([a-z]+)\.([a-z]+)@([a-z]+)\.(com|org|net|io|de)\b/g) {
        $emails{"$1.$2"}++;
        $domains{$4}++;
    }
    while ($line =~ m{https://([a-z]+)\.([a-z]+)/(\w+)/(\w+)\?id=(\d+)}g) {
        $n_urls++;
        $words{"url:$3"}++ if $5 % 7 == 0;
    }
    # normalise both date formats to YYYY-MM-DD
    $line =~ s/\b(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4})\b/sprintf("%04d-%02d-%02d", $3, $mon{$2}, $1)/ge;
    while ($line =~ /\b((?:19|20)\d\d)-(\d\d)-(\d\d)\b/g) {
        $n_dates++;
        $years{$1}++;
    }
    $n_nums++ while $line =~ /(?<![-\w.@\/=])\d+(?![-\w])/g;
    my @w = map { lc } ($line =~ /(?<![\w.@\/])([A-Za-z]{3,})(?![\w@])/g);
    for my $i (0 .. $#w) {
        $words{$w[$i]}++;
        $bigrams{"$w[$i] $w[$i+1]"}++ if $i < $#w && length($w[$i]) > 6;
    }
    $vowels += ($line =~ tr/aeiouAEIOU//);
    (my $t = $line) =~ s/([aeiou])([^aeiou\s]+)/\U$2\E$1/g;
    $t =~ s/\s+/ /g;
    $t = join ' ', reverse split / /, $t;
    $md5->add($t, "\n");
    push @kept, $t if $t =~ /^[A-Z]/;
    @kept = splice(@kept, -1000) if @kept > 5000;
}

sub top {
    my ($h, $n) = @_;
    my @k = sort { $h->{$b} <=> $h->{$a} || $a cmp $b } keys %$h;
    return join(", ", map { "$_=$h->{$_}" } @k[0 .. ($n < @k ? $n : scalar @k) - 1]);
}

print "lines $n_lines dates $n_dates urls $n_urls numbers $n_nums vowels $vowels\n";
print "distinct emails ", scalar(keys %emails), "; domains: ", top(\%domains, 5), "\n";
print "years: ", top(\%years, 8), "\n";
print "distinct words ", scalar(keys %words), "; top: ", top(\%words, 15), "\n";
print "bigrams ", scalar(keys %bigrams), "; top: ", top(\%bigrams, 5), "\n";
print "kept ", scalar(@kept), " md5(kept) ", md5_hex(join "\n", @kept), "\n";
print "md5(transformed) ", $md5->hexdigest, "\n";
